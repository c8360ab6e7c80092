"""Workflow rules every surface and the worker share: ids, a tenant's workflow, the subworkflows a
graph reaches, and the version a run pins."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import offload
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
    """Check that the definition can run, and return every workflow reachable through its
    SubworkflowNodes (loop bodies included), by id. Nothing is written unless all is well; then,
    with `pin`, each is pinned to the version matching its current definition (run start).

    Raises:
        InvalidDefinition: the first problem of the definition or of a workflow it runs (see
            `workflow_problems`).
    """
    graph.validate_definition(defn)
    found: dict[str, tuple[Workflow, SubworkflowSnapshot]] = {}
    faults = await _reference_problems(session, tenant_id, defn, root, found)
    if faults:
        raise InvalidDefinition(faults[0].detail)
    if not pin:
        return {wid: snap for wid, (_, snap) in found.items()}
    pinned: dict[str, SubworkflowSnapshot] = {}
    for wid, (wf, snap) in found.items():
        version = await version_for_run(session, wf)
        pinned[wid] = snap.model_copy(update={"version_id": str(version.id)})
    return pinned


async def workflow_problems(
    session: AsyncSession, tenant_id: uuid.UUID, defn: WorkflowDefinition, root: Workflow | None
) -> list[graph.Problem]:
    """Every problem that keeps a stored (well-shaped) definition from running: its own
    (`graph.definition_problems`), then its SubworkflowNodes' (a workflow not found, a cycle of
    workflows calling each other, a workflow that itself has a problem). Reads only."""
    found = await offload.run(len(defn.nodes) > offload.LARGE_GRAPH_NODES, graph.definition_problems, defn)
    return found + await _reference_problems(session, tenant_id, defn, root, {})


async def _reference_problems(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    defn: WorkflowDefinition,
    root: Workflow | None,
    found: dict[str, tuple[Workflow, SubworkflowSnapshot]],
) -> list[graph.Problem]:
    """Walk the workflows the definition runs, filling `found`; the problems met, each on the
    root-level node that leads to it."""
    faults: list[graph.Problem] = []

    async def visit(defn: WorkflowDefinition, path: list[tuple[str, str]], origin: str | None) -> None:
        for node in defn.nodes:
            kind = nodes.kind_of(node.node_type)
            if kind.has_body and not any(n.parent_id == node.id for n in defn.nodes):
                try:
                    body = graph.loop_body(defn, node)  # a body given in the loop's config
                except ValidationError:
                    continue  # reported by `graph.definition_problems`
                await visit(body, path, origin or node.id)
            target = node.config.get("workflow_id")
            if not kind.runs_child or not isinstance(target, str):
                continue  # a missing workflow_id is a config problem of the node
            at = origin or node.id
            if any(target == wid for wid, _ in path):
                names = [name for _, name in path[[wid for wid, _ in path].index(target) :]]
                faults.append(
                    graph.Problem(
                        at, "Subworkflows call each other in a cycle: " + " -> ".join([*names, names[0]])
                    )
                )
                continue
            if target in found:
                continue
            try:
                wf = await tenant_workflow(session, tenant_id, target)
            except NotFound:
                faults.append(
                    graph.Problem(at, f"Node '{node.id}' (SubworkflowNode): workflow '{target}' not found")
                )
                continue
            child = WorkflowDefinition.model_validate(wf.definition)
            child_faults = graph.definition_problems(child)
            if child_faults:
                faults.append(
                    graph.Problem(
                        at,
                        f"Node '{node.id}' (SubworkflowNode): workflow '{wf.name}' cannot run: "
                        f"{child_faults[0].detail}",
                    )
                )
                continue
            found[target] = (
                wf,
                SubworkflowSnapshot(workflow_id=str(wf.id), name=wf.name, definition=child),
            )
            await visit(child, [*path, (target, wf.name)], at)

    await visit(defn, [(str(root.id), root.name)] if root is not None else [], None)
    return faults


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
