"""Lookups for v1 schedules: whom a firing acts as, and the tenant's default timezone."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.accounts import Principal, Role
from db.models import Tenant, User, V1Definition


async def acting_principal(session: AsyncSession, d: V1Definition) -> Principal | None:
    """The definition's owner, or (no owner, or the owner was removed) the tenant's oldest OWNER: the
    user a scheduled run is triggered by."""
    user = await session.scalar(
        select(User)
        .where(User.tenant_id == d.tenant_id)
        .order_by((User.id == d.owner_id).desc(), (User.role == Role.OWNER.value).desc(), User.created_at)
        .limit(1)
    )
    return Principal(user.tenant_id, user.id, Role(user.role)) if user is not None else None


async def tenant_timezone(session: AsyncSession, tenant_id: uuid.UUID) -> str:
    zone = await session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id))
    return zone or "UTC"
