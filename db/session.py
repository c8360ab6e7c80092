"""Engine and session factory construction; nothing happens at import."""

from __future__ import annotations

from sqlalchemy import event, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def async_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (as pgserver and most hosts print them) and use asyncpg."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def make_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        async_url(url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )
    event.listen(engine.sync_engine, "handle_error", _drop_broken_connections)
    return engine


def _drop_broken_connections(context: ExceptionContext) -> None:
    """A connection the server dropped (or one left mid-operation when it went away) is discarded
    with the rest of the pool instead of being handed to the next request (see `failures.unavailable`)."""
    from db.failures import unavailable

    if not context.is_disconnect and unavailable(context.original_exception):
        context.is_disconnect = True


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(sessions: async_sessionmaker[AsyncSession]) -> None:
    """One round trip to the database; raises whatever the driver raises when it is not reachable."""
    async with sessions() as session:
        await session.execute(text("SELECT 1"))
