"""Apply Alembic migrations to head; called at start by the dev stack, the API and the worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

_INI = Path(__file__).with_name("alembic.ini")


def alembic_config(database_url: str) -> Config:
    cfg = Config(str(_INI))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str) -> None:
    """Migrate to head (blocking; env.py runs its own event loop)."""
    command.upgrade(alembic_config(database_url), "head")


async def upgrade_async(database_url: str) -> None:
    # env.py calls asyncio.run, which cannot nest inside a running loop; a thread has none.
    await asyncio.to_thread(upgrade, database_url)
