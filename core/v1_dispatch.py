"""Starting a v1 run: pin its snapshot (graph version, instruction, inputs) and build the engine input.

Shared by the API (`start`, PATCH `auto_start`, retry, resume) and the ingestion activity that
auto-starts a run once its uploads settle. No FastAPI here.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from activities.ingest_activities import RunStarts
from core.run_start import engine_input, start_execution
from core.workflow_versions import resolve_subworkflows, version_for_run
from db import folders_repo, repo, v1_definition_repo, v1_queries, v1_threads, workflow_repo
from db.models import Document, Run, Workflow
from run_status import Cause, IngestStatus
from settings import Settings
from workflows import graph
from workflows.contracts import RunInput, SubworkflowSnapshot
from workflows.definition import WorkflowDefinition
from workflows.run_workflow import RunWorkflow

log = logging.getLogger(__name__)


class InputProblem(Exception):
    """An input of the run failed ingestion (or is still being ingested)."""


async def _input_documents(session: AsyncSession, run: Run) -> list[Document]:
    """The run's uploads (its `inputs/` folder holds the only SOURCE documents of a run).

    Raises:
        InputProblem: an upload is still being ingested, or failed.
    """
    docs = await v1_queries.run_uploads(session, run.id)
    for doc in docs:
        if doc.ingest_status == IngestStatus.PENDING:
            raise InputProblem(f"Input '{doc.name}' is still being ingested")
        if doc.ingest_status == IngestStatus.FAILED:
            raise InputProblem(f"Input '{doc.name}' failed ingestion: {doc.ingest_error}")
    return docs


def _doc_input(doc: Document, origin: str) -> tuple[dict[str, Any], dict[str, Any]]:
    snap = {
        "path_part_id": str(doc.version_path_part_id),
        "materialized_path": doc.materialized_path,
        "part_type": "DOCUMENT_VERSION",
        "origin": origin,
    }
    payload = {
        "name": doc.name,
        "path_part_id": str(doc.version_path_part_id),
        "media_type": doc.media_type,
        "text": doc.text,
    }
    return snap, payload


async def _scope_inputs(
    session: AsyncSession, run: Run, ids: list[str], origin: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    docs, folders = await v1_queries.scope_items(session, run.tenant_id, ids)
    snaps, payloads = [], []
    for raw in ids:
        doc = docs.get(str(uuid.UUID(raw)))
        if doc is not None:
            s, p = _doc_input(doc, origin)
            snaps.append(s)
            payloads.append(p)
            continue
        folder = folders.get(str(uuid.UUID(raw)))
        if folder is not None:
            snaps.append(
                {
                    "path_part_id": str(folder.path_part_id),
                    "materialized_path": folder.materialized_path,
                    "part_type": "FOLDER",
                    "origin": origin,
                }
            )
            payloads.append(
                {
                    "name": folder.name,
                    "path_part_id": str(folder.path_part_id),
                    "media_type": None,
                    "text": None,
                }
            )
    return snaps, payloads


async def dispatch(
    session: AsyncSession,
    run: Run,
    settings: Settings,
    user_message: str | None,
    from_: list[str],
    *,
    cause: str = Cause.ENGINE,
    message_history: list[dict[str, Any]] | None = None,
) -> tuple[RunInput, timedelta] | None:
    """Pin the snapshot and move the draft to IN_PROGRESS (committed); None if another start won.
    `cause`: the user who started it, or the engine (an auto-start when its uploads settled).

    The caller then starts the Temporal execution with the returned input and execution timeout.

    Raises:
        InvalidDefinition: the workflow, or one it runs, has a problem (a stored draft); nothing is written.
    """
    wf = await workflow_repo.workflow(session, run.workflow_id)
    assert wf is not None
    await check_runnable(session, wf)
    d = await v1_definition_repo.ensure(session, wf)
    version = await version_for_run(session, wf)
    instruction = await folders_repo.document_by_path_part(session, None, d.instruction_path_part_id)
    snaps: list[dict[str, Any]] = []
    payloads: list[dict[str, Any]] = []
    for ids, origin in (
        (d.common_file_path_part_ids or [], "DEFINITION_COMMON"),
        (run.input_scope or [], "RUN_REFERENCE"),
    ):
        s, p = await _scope_inputs(session, run, ids, origin)
        snaps += s
        payloads += p
    for doc in await _input_documents(session, run):
        snap, item = _doc_input(doc, "RUN_UPLOAD")
        snaps.append(snap)
        payloads.append(item)
    message = user_message if user_message is not None else run.auto_start_user_message
    snapshot = {
        "workflow_name": wf.name,
        "max_run_duration_seconds": d.max_run_duration_seconds,
        "instruction": {
            "path_part_id": str(
                instruction.version_path_part_id if instruction else d.instruction_path_part_id
            ),
            "materialized_path": instruction.materialized_path if instruction else "",
            "part_type": "DOCUMENT_VERSION",
            "source_s3_uri": None,
        },
        "inputs": snaps,
        "excluded_common_files": [],
        "user_message": message,
        "selected_skill_ids": [*(d.selected_skill_ids or []), *(run.selected_skill_ids or [])],
        # Beyond ksapi's model (ignored by it): the pinned graph version.
        "workflow_version": version.version,
        "workflow_version_id": str(version.id),
    }
    payload = {
        "user_message": message,
        "instruction": (instruction.text or "") if instruction else "",
        "inputs": payloads,
    }
    if message_history is not None:  # a follow-up in a run thread (PySpur's chat convention)
        payload["message_history"] = message_history
    defn = WorkflowDefinition.model_validate(version.definition)
    input_id = graph.GraphPlan.build(defn).input_node_id
    # Built before anything is written: a subworkflow that vanished is refused with the draft untouched.
    engine_input = await run_input(session, run, wf, defn, payload, settings)
    # Pinned too, so a retry or resume runs the same subworkflow versions as the first attempt.
    snapshot["subworkflow_versions"] = {w: sub.version_id for w, sub in engine_input.subworkflows.items()}
    moved = await repo.dispatch_draft(
        session,
        run.id,
        from_,
        cause=cause,
        snapshot=snapshot,
        workflow_version_id=version.id,
        initial_inputs={input_id: payload},
    )
    if moved:  # Start opens the run's thread (a follow-up run is already in its thread)
        await v1_threads.join(session, run.tenant_id, run.id, v1_threads.primary_thread_id(run.id))
    await session.commit()
    if not moved:
        log.info("start of draft %s refused: %s", run.id, moved.refusal)  # a racing start won
        return None
    return engine_input, timedelta(seconds=d.max_run_duration_seconds)


async def check_runnable(session: AsyncSession, wf: Workflow) -> None:
    """Refuse a stored draft before anything of a run is written.

    Raises:
        InvalidDefinition: naming the first problem of the workflow or of one it runs.
    """
    defn = WorkflowDefinition.model_validate(wf.definition)
    await resolve_subworkflows(session, wf.tenant_id, defn, wf, pin=False)


async def run_input(
    session: AsyncSession,
    run: Run,
    wf: Workflow,
    defn: WorkflowDefinition,
    payload: dict[str, Any],
    settings: Settings,
    subworkflows: dict[str, SubworkflowSnapshot] | None = None,
) -> RunInput:
    if subworkflows is None:
        subworkflows = await resolve_subworkflows(session, run.tenant_id, defn, wf, pin=True)
    return engine_input(run, wf, defn, payload, settings, subworkflows, attempt=run.attempt)


async def again(session: AsyncSession, run: Run, settings: Settings) -> tuple[RunInput, timedelta]:
    """The engine input of a re-armed run (retry/resume): the pinned graph version and payload."""
    assert run.workflow_version_id is not None
    version = await workflow_repo.version(session, run.workflow_version_id)
    assert version is not None
    wf = await workflow_repo.workflow(session, run.workflow_id)
    assert wf is not None
    d = await v1_definition_repo.ensure(session, wf)
    defn = WorkflowDefinition.model_validate(version.definition)
    payload: dict[str, Any] = next(iter((run.initial_inputs or {}).values()), {})
    pinned = await _pinned_subworkflows(session, run)
    return await run_input(session, run, wf, defn, payload, settings, pinned), timedelta(
        seconds=d.max_run_duration_seconds
    )


async def start_again(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    run: Run,
    *,
    eager: bool,
    restart: bool,
    precomputed: dict[str, Any] | None = None,
) -> None:
    """Start a dispatched run's execution from its pinned snapshot: a retry or resume (`restart`), or a
    schedule firing whose earlier attempt stored the run but did not get to start it."""
    run_input, timeout = await again(session, run, settings)
    # Versions it created (a subworkflow resolved afresh) must be visible to the execution's writes.
    await session.commit()
    if precomputed:
        run_input = run_input.model_copy(update={"precomputed": precomputed})
    wf = await workflow_repo.workflow(session, run.workflow_id)
    assert wf is not None
    await start_execution(
        session,
        client,
        settings,
        run,
        wf,
        RunWorkflow.run,
        run_input,
        eager=eager,
        execution_timeout=timeout,
        restart=restart,
    )


async def _pinned_subworkflows(session: AsyncSession, run: Run) -> dict[str, SubworkflowSnapshot] | None:
    """The subworkflow versions the first attempt pinned; None (resolve afresh) if any is gone."""
    pinned = (run.snapshot or {}).get("subworkflow_versions")
    if not isinstance(pinned, dict):
        return None
    found: dict[str, SubworkflowSnapshot] = {}
    for workflow_id, version_id in pinned.items():
        version = await workflow_repo.version(session, uuid.UUID(version_id)) if version_id else None
        sub = await workflow_repo.workflow(session, uuid.UUID(workflow_id))
        if version is None or sub is None:
            return None
        found[workflow_id] = SubworkflowSnapshot(
            workflow_id=workflow_id,
            name=sub.name,
            version_id=version_id,
            definition=WorkflowDefinition.model_validate(version.definition),
        )
    return found


def run_starts() -> RunStarts:
    """These rules, for the ingestion activities (which start a run once its uploads settle) and the
    schedule activity (which creates and starts a run at each firing)."""
    # Imported here: the firing rule builds on the run rules, which import this module.
    from core.v1_schedule_firing import fire

    return RunStarts(dispatch=dispatch, again=again, fire=fire)
