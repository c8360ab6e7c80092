"""SQL of the tenants' provider keys (`provider_keys`): ciphertext in, ciphertext out; core/ encrypts."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ProviderKey, utcnow


async def load(
    session: AsyncSession, tenant_id: uuid.UUID, names: Iterable[str] | None = None
) -> dict[str, bytes]:
    query = select(ProviderKey.name, ProviderKey.ciphertext).where(ProviderKey.tenant_id == tenant_id)
    if names is not None:
        query = query.where(ProviderKey.name.in_(list(names)))
    return {name: bytes(ct) for name, ct in (await session.execute(query)).all()}


async def store(session: AsyncSession, tenant_id: uuid.UUID, name: str, ciphertext: bytes) -> None:
    stmt = insert(ProviderKey).values(
        tenant_id=tenant_id, name=name, ciphertext=ciphertext, updated_at=utcnow()
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[ProviderKey.tenant_id, ProviderKey.name],
            set_={"ciphertext": stmt.excluded.ciphertext, "updated_at": stmt.excluded.updated_at},
        )
    )


async def remove(session: AsyncSession, tenant_id: uuid.UUID, name: str) -> bool:
    result = await session.execute(
        delete(ProviderKey).where(ProviderKey.tenant_id == tenant_id, ProviderKey.name == name)
    )
    return bool(getattr(result, "rowcount", 0))
