"""Workflow (definition) rules: validation on save, unique names, versions by definition hash."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import workflow_repo
from db.accounts import Principal
from db.models import Workflow, WorkflowVersion, utcnow
from errors import Conflict, InvalidDefinition, NotFound
from workflows import graph
from workflows.definition import SpurType, WorkflowDefinition, chatbot_definition, default_definition
from workflows.schema import SubworkflowSnapshot

# Room for the " <timestamp> (n)" or " (Copy)" suffix within the 500-character column.
_NAME_ROOM = 460


def parse_id(raw: str | uuid.UUID, what: str) -> uuid.UUID:
    """Ids are UUIDs; anything else cannot name an entity, so it is simply not found."""
    if isinstance(raw, uuid.UUID):
        return raw
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"{what} not found") from None


async def get_workflow(session: AsyncSession, who: Principal, workflow_id: str) -> Workflow:
    return await _tenant_workflow(session, who.tenant_id, workflow_id)


async def _tenant_workflow(session: AsyncSession, tenant_id: uuid.UUID, workflow_id: str) -> Workflow:
    wf = await workflow_repo.tenant_workflow(session, tenant_id, parse_id(workflow_id, "Workflow"))
    if wf is None:
        raise NotFound("Workflow not found")
    return wf


def prepare_definition(defn: WorkflowDefinition | None) -> dict[str, Any]:
    """Fill PySpur's defaults for an empty definition, validate, and return the JSON to store.

    Raises:
        InvalidDefinition: the definition cannot run (see `graph.validate_definition`).
    """
    if defn is None or not defn.nodes:
        spur = defn.spur_type if defn else SpurType.WORKFLOW
        defn = chatbot_definition() if spur == SpurType.CHATBOT else default_definition()
    graph.validate_definition(defn)
    return defn.model_dump(mode="json")


async def resolve_subworkflows(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    defn: WorkflowDefinition,
    root: Workflow | None,
    *,
    pin: bool,
) -> dict[str, SubworkflowSnapshot]:
    """Every workflow reachable through SubworkflowNodes (loop bodies included), by id.

    With `pin`, each is pinned to the version matching its current definition (run start).

    Raises:
        InvalidDefinition: a SubworkflowNode names a workflow this tenant does not have, or the
            workflows call each other in a cycle.
    """
    found: dict[str, SubworkflowSnapshot] = {}

    async def visit(defn: WorkflowDefinition, path: list[tuple[str, str]]) -> None:
        for node in defn.nodes:
            if node.node_type == "ForLoopNode" and not any(n.parent_id == node.id for n in defn.nodes):
                await visit(graph.loop_body(defn, node), path)  # a body given in the loop's config
            if node.node_type != "SubworkflowNode":
                continue
            target = str(node.config.get("workflow_id", ""))
            if any(target == wid for wid, _ in path):
                names = [name for _, name in path[[wid for wid, _ in path].index(target) :]]
                raise InvalidDefinition(
                    "Subworkflows call each other in a cycle: " + " -> ".join([*names, names[0]])
                )
            if target in found:
                continue
            try:
                wf = await _tenant_workflow(session, tenant_id, target)
            except NotFound:
                raise InvalidDefinition(
                    f"Node '{node.id}' (SubworkflowNode): workflow '{target}' not found"
                ) from None
            child = WorkflowDefinition.model_validate(wf.definition)
            version = await version_for_run(session, wf) if pin else None
            found[target] = SubworkflowSnapshot(
                workflow_id=str(wf.id),
                name=wf.name,
                version_id=str(version.id) if version else None,
                definition=child,
            )
            await visit(child, [*path, (target, wf.name)])

    await visit(defn, [(str(root.id), root.name)] if root is not None else [])
    return found


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
    await resolve_subworkflows(
        session, who.tenant_id, WorkflowDefinition.model_validate(definition), None, pin=False
    )
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
    await resolve_subworkflows(
        session, wf.tenant_id, WorkflowDefinition.model_validate(definition), wf, pin=False
    )
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


def definition_hash(definition: dict[str, Any]) -> str:
    # PySpur hashes json.dumps(sort_keys=True) with default separators; keep it so hashes agree.
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()


async def version_for_run(session: AsyncSession, wf: Workflow) -> WorkflowVersion:
    """The version matching the workflow's current definition, created on first use of a new hash."""
    digest = definition_hash(wf.definition)
    for _ in range(5):
        found = await workflow_repo.version_by_hash(session, wf.id, digest)
        if found is not None:
            return found
        latest = await workflow_repo.latest_version_number(session, wf.id)
        version = WorkflowVersion(
            workflow_id=wf.id,
            version=latest + 1,
            name=wf.name,
            description=wf.description,
            definition=wf.definition,
            definition_hash=digest,
        )
        try:
            async with session.begin_nested():
                session.add(version)
            return version
        except IntegrityError:
            continue  # a concurrent run created that version number; look again
    raise Conflict("Could not create a workflow version; try again")


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
