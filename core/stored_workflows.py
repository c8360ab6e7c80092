"""Workflow (definition) rules: validation on save, unique names, versions by definition hash."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import offload
from core.editor_layout import place_unplaced
from core.workflow_versions import tenant_workflow, workflow_problems
from db import workflow_repo
from db.accounts import Principal
from db.models import Workflow, utcnow
from errors import Conflict
from workflows import graph
from workflows.definition import SpurType, WorkflowDefinition, chatbot_definition, default_definition

# Room for the " <timestamp> (n)" or " (Copy)" suffix within the 500-character column.
_NAME_ROOM = 460


async def get_workflow(session: AsyncSession, who: Principal, workflow_id: str) -> Workflow:
    return await tenant_workflow(session, who.tenant_id, workflow_id)


def prepare_definition(defn: WorkflowDefinition | None) -> dict[str, Any]:
    """Fill PySpur's defaults for an empty definition, check its shape, place nodes saved without a
    position (the editor cannot draw them), and return the JSON to store.

    What the editor produces while a user draws (null config values, cycles, dangling links, no
    InputNode) is stored as a draft: `definition_problems` reports it, and runs refuse it.

    Raises:
        InvalidDefinition: a shape fault (see `graph.check_shape`).
    """
    if defn is None or not defn.nodes:
        spur = defn.spur_type if defn else SpurType.WORKFLOW
        defn = chatbot_definition() if spur == SpurType.CHATBOT else default_definition()
    graph.check_shape(defn)
    place_unplaced(defn)
    return defn.model_dump(mode="json")


async def prepared(defn: WorkflowDefinition | None) -> dict[str, Any]:
    """`prepare_definition`, off the event loop for a large graph."""
    large = defn is not None and len(defn.nodes) > offload.LARGE_GRAPH_NODES
    return await offload.run(large, prepare_definition, defn)


async def definition_problems(session: AsyncSession, wf: Workflow) -> list[graph.Problem]:
    """What keeps the stored workflow from running (empty: it can run), as every run start checks it."""
    defn = await offload.run(
        offload.is_large(wf.definition), WorkflowDefinition.model_validate, wf.definition
    )
    return await workflow_problems(session, wf.tenant_id, defn, wf)


async def _unique_name(session: AsyncSession, tenant_id: uuid.UUID, wanted: str) -> str:
    base = (wanted.strip() or "Untitled Workflow")[:_NAME_ROOM]
    if not await workflow_repo.name_taken(session, tenant_id, base):
        return base
    stamped = f"{base} {datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S')}"
    name, n = stamped, 2
    while await workflow_repo.name_taken(session, tenant_id, name):
        name, n = f"{stamped} ({n})", n + 1
    return name


async def create_workflow(
    session: AsyncSession, who: Principal, name: str, description: str, definition: dict[str, Any]
) -> Workflow:
    """Create with a name made unique (PySpur's timestamp suffix); retried if a racing create takes it."""
    for _ in range(5):
        wf = Workflow(
            tenant_id=who.tenant_id,
            name=await _unique_name(session, who.tenant_id, name),
            description=description,
            definition=definition,
        )
        try:
            async with session.begin_nested():
                session.add(wf)
            return wf
        except IntegrityError:
            continue  # a racing create took the name; look for the next free one
    raise Conflict("Could not find a free workflow name; try again")


async def update_workflow(
    session: AsyncSession, wf: Workflow, name: str, description: str, definition: dict[str, Any]
) -> Workflow:
    if await workflow_repo.name_taken(session, wf.tenant_id, name, exclude=wf.id):
        raise Conflict(f"A workflow named '{name}' already exists")
    wf.name, wf.description, wf.definition, wf.updated_at = name, description, definition, utcnow()
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"A workflow named '{name}' already exists") from None
    return wf


def test_files_dir(data_dir: Path, workflow_id: uuid.UUID) -> Path:
    return data_dir / "test_files" / str(workflow_id)


async def delete_workflow(session: AsyncSession, wf: Workflow, data_dir: Path) -> None:
    """Delete with its versions, runs and test files.

    Raises:
        Conflict: a run of it has not finished (its execution would be left writing into nothing).
    """
    if await workflow_repo.has_unfinished_run(session, wf.id):
        raise Conflict("The workflow has runs that have not finished; cancel them or wait, then delete")
    caller = await workflow_repo.subworkflow_caller(session, wf)
    if caller is not None:
        raise Conflict(
            f"Workflow '{caller}' runs this workflow as a subworkflow; change it first, then delete"
        )
    # v1 drafts never started have no execution to orphan: they go with the workflow (FK cascade).
    await workflow_repo.remove(session, wf)
    await session.commit()  # the test files go only once the rows are gone
    shutil.rmtree(test_files_dir(data_dir, wf.id), ignore_errors=True)


def output_variables(definition: dict[str, Any]) -> list[dict[str, str]]:
    defn = WorkflowDefinition.model_validate(definition)
    sources = {link.source_id for link in defn.links}
    out = []
    for node in defn.nodes:
        if node.id in sources:
            continue
        for var in node.config.get("output_schema") or {}:
            out.append({"node_id": node.id, "variable_name": var, "prefixed_variable": f"{node.id}-{var}"})
    return out
