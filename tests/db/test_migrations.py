"""The models and the migrations describe one schema, and migration 0007 applies to a database with rows."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from db.migrate import alembic_config
from db.models import Base
from db.session import async_url, make_engine
from tests.conftest import Stack

pytestmark = pytest.mark.integration


async def test_autogenerate_finds_no_difference_between_models_and_migrations(
    db: async_sessionmaker[AsyncSession],
) -> None:
    async with db() as session:
        conn = await session.connection()
        diff: list[Any] = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
        )
    assert diff == []


async def test_migration_0007_constrains_a_database_that_already_holds_runs(stack: Stack) -> None:
    name = f"m{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(async_url(stack.database_url), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(stack.database_url).set(database=name).render_as_string(hide_password=False)
    cfg = alembic_config(url)
    engine = make_engine(url, pool_size=1)
    try:
        await asyncio.to_thread(command.upgrade, cfg, "0006")
        async with engine.begin() as conn:
            for statement in filter(str.strip, _ROWS_AT_0006.split(";")):
                await conn.execute(text(statement))
        await asyncio.to_thread(command.upgrade, cfg, "head")
        async with engine.connect() as conn:
            checks = set(
                (await conn.execute(text("SELECT conname FROM pg_constraint WHERE contype = 'c'"))).scalars()
            )
            kept = (await conn.execute(text("SELECT status, draft_state FROM runs ORDER BY status"))).all()
        assert {"ck_runs_status", "ck_runs_draft_state", "ck_documents_origin", "ck_tasks_status"} <= checks
        assert [tuple(r) for r in kept] == [("FAILED", None), ("PENDING", "NOT_STARTED")]
        await asyncio.to_thread(command.downgrade, cfg, "0006")
        await asyncio.to_thread(command.upgrade, cfg, "head")
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()


# Rows as the code before migration 0007 wrote them: a v1 draft, a stopped run, its tasks and documents.
_ROWS_AT_0006 = """
INSERT INTO tenants (id, name, created_at) VALUES ('00000000-0000-0000-0000-000000000001', 't', now());
INSERT INTO workflows (id, tenant_id, name, description, definition, created_at, updated_at)
VALUES ('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000001', 'w', '', '{}', now(), now());
INSERT INTO runs (id, tenant_id, workflow_id, status, run_type, start_time, v1, draft_state, auto_start,
                  approval_state, attempt, created_at, updated_at)
VALUES ('00000000-0000-0000-0000-000000000003', '00000000-0000-0000-0000-000000000001',
        '00000000-0000-0000-0000-000000000002', 'PENDING', 'interactive', now(), true, 'NOT_STARTED', false,
        'not_required', 1, now(), now()),
       ('00000000-0000-0000-0000-000000000004', '00000000-0000-0000-0000-000000000001',
        '00000000-0000-0000-0000-000000000002', 'FAILED', 'interactive', now(), true, NULL, false,
        'pending', 1, now(), now());
INSERT INTO tasks (id, run_id, node_id, scope, seq, status)
VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000004', 'a', '', 0, 'CANCELED');
INSERT INTO documents (id, path_part_id, version_id, version_path_part_id, tenant_id, parent_path_part_id,
                       materialized_path, run_id, name, media_type, origin, size_bytes, ingest_status,
                       approval_state, created_at, updated_at)
VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(),
        '00000000-0000-0000-0000-000000000001', gen_random_uuid(), '/x', '00000000-0000-0000-0000-000000000004',
        'x', 'text/plain', 'GENERATED', 0, 'FAILED', 'approved', now(), now());
"""
