"""v1 reads and the writes that accompany v1 run state: folders, documents, execution-state views.

Run state changes go through `db/run_state.py`; this module never writes a state column.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, and_, case, func, literal_column, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Document, Folder, Run, V1Definition, WorkflowVersion, utcnow
from run_status import (
    EXECUTION_VIEW,
    ApprovalState,
    DocumentOrigin,
    ExecutionState,
    IngestStatus,
)
from run_status import (
    execution_state as execution_state,
)
from workflows import nodes

# The v1 view of a run is `run_status.EXECUTION_VIEW`; these names are its states.
NOT_STARTED, PENDING, IN_PROGRESS, COMPLETED, FAILED = (
    ExecutionState.NOT_STARTED,
    ExecutionState.PENDING,
    ExecutionState.IN_PROGRESS,
    ExecutionState.COMPLETED,
    ExecutionState.FAILED,
)
EXECUTION_STATES = tuple(ExecutionState)
_PATHS = uuid.UUID("0b5f1a52-7d0e-4c3e-9a61-2f8f3c0d9e47")


def _sql_text(value: str) -> ColumnElement[str]:
    """A constant written into the statement, not bound: the expression indexes of migration 0011 are
    matched only by an identical expression, and a bound parameter is not one in a generic plan."""
    assert "'" not in value  # only enum values and fixed words come here
    return literal_column(f"'{value}'", String)


def execution_state_sql() -> ColumnElement[str]:
    """`run_status.execution_state` as a SQL expression (for filters and counts), built from the same table.

    Migration 0011 indexes this exact expression (`ix_runs_v1_state_started`); change both together
    (tests/db/test_list_plans.py fails when they drift apart)."""
    by_view: dict[ExecutionState, list[str]] = defaultdict(list)
    for status, view in EXECUTION_VIEW.items():
        by_view[view].append(status.value)
    return case(
        (Run.draft_state.is_not(None), Run.draft_state),
        *(
            (Run.status.in_([_sql_text(s) for s in statuses]), _sql_text(view.value))
            for view, statuses in by_view.items()
        ),
    )


def started_at_sql() -> ColumnElement[datetime]:
    """The presenter's `started_at` in SQL: null for drafts and v1 runs that never started (a snapshot may
    be stored as SQL NULL or as JSON null). Indexed as is by migration 0011 (`ix_runs_v1_started`)."""
    no_snapshot = func.coalesce(func.jsonb_typeof(Run.snapshot), _sql_text("null")) == _sql_text("null")
    never_started = or_(Run.draft_state.is_not(None), and_(Run.v1.is_(True), no_snapshot))
    return case((never_started, None), else_=Run.start_time)


def derived_id(owner: uuid.UUID, what: str) -> uuid.UUID:
    """Stable ids for path parts of runs created outside v1 (they have no folder rows)."""
    return uuid.uuid5(_PATHS, f"{owner}|{what}")


def child_path(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


async def root_folder(session: AsyncSession, tenant_id: uuid.UUID) -> Folder:
    """The tenant's root folder, created on first use (racing creators agree on one)."""
    query = select(Folder).where(Folder.tenant_id == tenant_id, Folder.parent_path_part_id.is_(None))
    root = await session.scalar(query)
    if root is not None:
        return root
    await session.execute(
        insert(Folder)
        .values(
            id=uuid.uuid4(),
            path_part_id=uuid.uuid4(),
            tenant_id=tenant_id,
            parent_path_part_id=None,
            name="root",
            materialized_path="/",
            system_managed=True,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        .on_conflict_do_nothing(
            index_elements=[Folder.tenant_id], index_where=Folder.parent_path_part_id.is_(None)
        )
    )
    root = await session.scalar(query)
    assert root is not None
    return root


async def run_folders(session: AsyncSession, run_id: uuid.UUID) -> dict[str, Folder]:
    rows = (await session.scalars(select(Folder).where(Folder.run_id == run_id))).all()
    return {f.role or "": f for f in rows}


async def move_run_paths(session: AsyncSession, run_id: uuid.UUID, run_path: str) -> None:
    """A renamed run's folders and documents take its new path."""
    for folder in (await run_folders(session, run_id)).values():
        folder.materialized_path = child_path(run_path, folder.role or folder.name)
        await session.execute(
            update(Document)
            .where(Document.parent_path_part_id == folder.path_part_id)
            .values(materialized_path=func.concat(folder.materialized_path, "/", Document.name))
        )


async def store_outputs(session: AsyncSession, run_id: uuid.UUID, outputs: dict[str, Any]) -> ApprovalState:
    """A v1 run just COMPLETED: each OutputNode result becomes a JSON document under its `outputs/`
    folder. Returns the approval state the run (and those documents) start in."""
    run = await session.scalar(select(Run).where(Run.id == run_id))
    assert run is not None
    required = await session.scalar(
        select(V1Definition.approval_required).where(V1Definition.workflow_id == run.workflow_id)
    )
    state = ApprovalState.PENDING if required else ApprovalState.NOT_REQUIRED
    folder = (await run_folders(session, run_id)).get("outputs")
    definition: dict[str, Any] = {}
    if run.workflow_version_id is not None:
        definition = (
            await session.scalar(
                select(WorkflowVersion.definition).where(WorkflowVersion.id == run.workflow_version_id)
            )
        ) or {}
    output_nodes = [
        n["id"] for n in definition.get("nodes", []) if nodes.kind_of(n.get("node_type")).is_output
    ]
    if folder is not None:
        for node_id in output_nodes:
            if node_id not in outputs:
                continue
            body = json.dumps(outputs[node_id], indent=2, sort_keys=True)
            name = f"{node_id}.json"
            session.add(
                Document(
                    tenant_id=run.tenant_id,
                    parent_path_part_id=folder.path_part_id,
                    materialized_path=child_path(folder.materialized_path, name),
                    run_id=run.id,
                    name=name,
                    media_type="application/json",
                    origin=DocumentOrigin.GENERATED.value,
                    size_bytes=len(body.encode()),
                    content=body.encode(),
                    text=body,
                    ingest_status=IngestStatus.COMPLETED.value,
                    approval_state=state.value,
                )
            )
    return state
