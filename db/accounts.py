"""Tenants, users and API keys: creation (for the admin CLI and first start) and key lookup."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ApiKey, Tenant, User, utcnow

KEY_PREFIX = "ks_"


class Role(StrEnum):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    USER = "USER"


@dataclass(frozen=True)
class Principal:
    """Who is calling: every query is scoped by `tenant_id`."""

    tenant_id: uuid.UUID
    user_id: uuid.UUID
    role: Role


def hash_key(plaintext: str) -> str:
    # Keys are 256-bit random, so a fast unsalted hash is enough to make a stolen table useless.
    return hashlib.sha256(plaintext.encode()).hexdigest()


async def create_tenant(session: AsyncSession, name: str) -> Tenant:
    tenant = Tenant(name=name)
    session.add(tenant)
    await session.flush()
    return tenant


async def create_user(
    session: AsyncSession, tenant_id: uuid.UUID, email: str, role: Role, name: str = ""
) -> User:
    user = User(tenant_id=tenant_id, email=email, role=role.value, name=name)
    session.add(user)
    await session.flush()
    return user


async def create_api_key(
    session: AsyncSession, user: User, name: str = "", expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """Returns the stored row and the plaintext key, which is never stored and shown only once."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        tenant_id=user.tenant_id,
        user_id=user.id,
        name=name,
        prefix=plaintext[:10],
        key_hash=hash_key(plaintext),
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    return key, plaintext


async def principal_for_key(session: AsyncSession, plaintext: str) -> Principal | None:
    row = (
        await session.execute(
            select(User.tenant_id, User.id, User.role)
            .join(ApiKey, ApiKey.user_id == User.id)
            .where(
                ApiKey.key_hash == hash_key(plaintext),
                ApiKey.revoked_at.is_(None),
                or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > utcnow()),
            )
        )
    ).first()
    if row is None:
        return None
    return Principal(tenant_id=row[0], user_id=row[1], role=Role(row[2]))


async def find_tenant(session: AsyncSession, name: str) -> Tenant | None:
    return await session.scalar(select(Tenant).where(Tenant.name == name))


async def first_owner(session: AsyncSession) -> Principal | None:
    """The earliest OWNER of any tenant (the anonymous local caller acts as them)."""
    owner = (
        await session.execute(select(User).where(User.role == Role.OWNER).order_by(User.created_at))
    ).scalar()
    return Principal(owner.tenant_id, owner.id, Role.OWNER) if owner is not None else None


async def api_keys(session: AsyncSession, user_id: uuid.UUID) -> list[ApiKey]:
    """The user's keys that are not revoked, oldest first."""
    rows = await session.scalars(
        select(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at)
    )
    return list(rows.all())


async def revoke_api_key(session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID) -> bool:
    """Revoke one of the user's keys; False if it has none such that is not revoked."""
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)
