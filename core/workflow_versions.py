"""Workflow rules every surface and the worker share: ids, a tenant's workflow, the subworkflows a
graph reaches, and the version a run pins."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import workflow_repo
from db.models import Workflow, WorkflowVersion
from errors import Conflict, InvalidDefinition, NotFound
from workflows import graph, nodes
from workflows.contracts import SubworkflowSnapshot
from workflows.definition import WorkflowDefinition


def parse_id(raw: str | uuid.UUID, what: str) -> uuid.UUID:
    """Ids are UUIDs; anything else cannot name an entity, so it is simply not found."""
    if isinstance(raw, uuid.UUID):
        return raw
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"{what} not found") from None


async def tenant_workflow(session: AsyncSession, tenant_id: uuid.UUID, workflow_id: str) -> Workflow:
    wf = await workflow_repo.tenant_workflow(session, tenant_id, parse_id(workflow_id, "Workflow"))
    if wf is None:
        raise NotFound("Workflow not found")
    return wf


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
            if nodes.kind_of(node.node_type).has_body and not any(n.parent_id == node.id for n in defn.nodes):
                await visit(graph.loop_body(defn, node), path)  # a body given in the loop's config
            if not nodes.kind_of(node.node_type).runs_child:
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
                wf = await tenant_workflow(session, tenant_id, target)
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
