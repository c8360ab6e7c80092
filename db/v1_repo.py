"""v1 reads and the writes that accompany v1 run state: folders, documents, execution-state views.

Run *status* changes stay in `db/repo.py`; this module never writes `runs.status`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Document, Folder, Run, V1Definition, WorkflowVersion, utcnow
from run_status import RunStatus
from workflows import nodes

# The v1 view of a run: its execution state, derived from the status and the draft state.
NOT_STARTED, PENDING, IN_PROGRESS, COMPLETED, FAILED = (
    "NOT_STARTED",
    "PENDING",
    "IN_PROGRESS",
    "COMPLETED",
    "FAILED",
)
EXECUTION_STATES = (PENDING, NOT_STARTED, IN_PROGRESS, COMPLETED, FAILED)
_VIEW = {
    RunStatus.PENDING.value: IN_PROGRESS,
    RunStatus.RUNNING.value: IN_PROGRESS,
    RunStatus.PAUSED.value: IN_PROGRESS,
    RunStatus.COMPLETED.value: COMPLETED,
    RunStatus.FAILED.value: FAILED,
    RunStatus.CANCELED.value: FAILED,
}
_PATHS = uuid.UUID("0b5f1a52-7d0e-4c3e-9a61-2f8f3c0d9e47")


def execution_state(status: str, draft_state: str | None) -> str:
    return draft_state if draft_state else _VIEW[status]


def execution_state_sql() -> ColumnElement[str]:
    """The same mapping as a SQL expression, for filters and counts."""
    return case(
        (Run.draft_state.is_not(None), Run.draft_state),
        (Run.status.in_(["PENDING", "RUNNING", "PAUSED"]), IN_PROGRESS),
        (Run.status == "COMPLETED", COMPLETED),
        else_=FAILED,
    )


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


async def on_terminal(
    session: AsyncSession, run_id: uuid.UUID, status: RunStatus, outputs: dict[str, Any]
) -> None:
    """Called in the transaction of a run's first terminal write: a completed v1 run stores each
    OutputNode result as a JSON document under its `outputs/` folder and awaits approval if required."""
    if status != RunStatus.COMPLETED:
        return
    run = await session.scalar(select(Run).where(Run.id == run_id, Run.v1.is_(True)))
    if run is None:
        return
    approval = await session.scalar(
        select(V1Definition.approval_required).where(V1Definition.workflow_id == run.workflow_id)
    )
    state = "pending" if approval else "not_required"
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
                    origin="GENERATED",
                    size_bytes=len(body.encode()),
                    content=body.encode(),
                    text=body,
                    ingest_status="COMPLETED",
                    approval_state=state,
                )
            )
    await session.execute(
        update(Run).where(Run.id == run_id).values(approval_state=state, updated_at=utcnow())
    )
