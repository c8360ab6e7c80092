"""Database rows to wire models (rows never leave the API as they are)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fastapi import Response
from pydantic import BaseModel

from api.pyspur.schemas import (
    DatasetResponse,
    DefinitionProblem,
    OutputFileResponse,
    PausedWorkflowResponse,
    PauseHistoryResponse,
    RunResponse,
    TaskResponse,
    WorkflowResponse,
    WorkflowVersionResponse,
)
from core.storable import shown
from db.models import Dataset, OutputFile, Pause, Run, Task, Workflow, WorkflowVersion, utcnow
from run_status import PauseAction, RunStatus, TaskStatus
from workflows.definition import WorkflowDefinition
from workflows.graph import Problem


def _sid(value: object) -> str | None:
    return None if value is None else str(value)


def encoded(model: BaseModel) -> Response:
    """The model as the response body, as its route's `response_model` would give it, without FastAPI
    dumping and validating it again on the event loop (~40 ms for a 1,000-node workflow)."""
    return Response(model.model_dump_json(), media_type="application/json")


def workflow(wf: Workflow, problems: Sequence[Problem] = ()) -> WorkflowResponse:
    return WorkflowResponse(
        id=str(wf.id),
        name=wf.name,
        description=wf.description,
        definition=WorkflowDefinition.model_validate(wf.definition),
        created_at=wf.created_at,
        updated_at=wf.updated_at,
        problems=[DefinitionProblem(node_id=p.node_id, detail=p.detail) for p in problems],
    )


def version(v: WorkflowVersion) -> WorkflowVersionResponse:
    return WorkflowVersionResponse(
        version=v.version,
        name=v.name,
        description=v.description,
        definition=v.definition,
        definition_hash=v.definition_hash,
        created_at=v.created_at,
        updated_at=v.updated_at,
    )


def task(t: Task) -> TaskResponse:
    return TaskResponse(
        id=str(t.id),
        run_id=str(t.run_id),
        node_id=t.node_id,
        parent_task_id=_sid(t.parent_task_id),
        status=TaskStatus(t.status),
        inputs=shown(t.inputs) if t.inputs is not None else {},
        outputs=shown(t.outputs),
        error=t.error,
        start_time=t.start_time,
        end_time=t.end_time,
        subworkflow=shown(t.subworkflow),
        subworkflow_output=shown(t.subworkflow_output),
        iteration=int(t.scope.rpartition("#")[2]) if t.scope else None,
        usage=t.usage,
    )


def _duration(start: datetime, end: datetime | None) -> float:
    return max(0.0, ((end or utcnow()) - start).total_seconds())


def run(r: Run, message: str | None = None, inputs: dict[str, Any] | None = None) -> RunResponse:
    """`inputs`: the run's initial inputs, when the caller holds them and did not read them again."""
    tasks = [task(t) for t in r.tasks]
    done = sum(1 for t in tasks if t.status == TaskStatus.COMPLETED)
    return RunResponse(
        id=str(r.id),
        workflow_id=str(r.workflow_id),
        workflow_version_id=_sid(r.workflow_version_id),
        workflow_version=version(r.version) if r.version is not None else None,
        status=RunStatus(r.status),
        start_time=r.start_time,
        end_time=r.end_time,
        initial_inputs=shown(r.initial_inputs if inputs is None else inputs),
        outputs=shown(r.outputs),
        tasks=tasks,
        parent_run_id=_sid(r.parent_run_id),
        run_type=r.run_type,
        output_file_id=_sid(r.output_file_id),
        input_dataset_id=_sid(r.input_dataset_id),
        message=message,
        error=r.error,
        duration=_duration(r.start_time, r.end_time),
        percentage_complete=_percentage(r, done, len(tasks)),
        rows_total=r.rows_total,
        rows_done=r.rows_done,
        rows_failed=r.rows_failed,
        usage=usage_total([t.usage for t in tasks]),
    )


def usage_total(usages: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The usage of a run's LLM tasks summed (None when it has none); cost only if every call has one."""
    found = [u for u in usages if u]
    if not found:
        return None
    costs = [u.get("cost_usd") for u in found]
    return {
        "prompt_tokens": sum(int(u.get("prompt_tokens") or 0) for u in found),
        "completion_tokens": sum(int(u.get("completion_tokens") or 0) for u in found),
        "cost_usd": round(sum(c for c in costs if c is not None), 8) if None not in costs else None,
    }


def _percentage(r: Run, done: int, total: int) -> float:
    if r.rows_total:  # a batch parent: its rows are its progress
        return 100.0 * (r.rows_done or 0) / r.rows_total
    if total:
        return 100.0 * done / total
    return 100.0 if r.status == RunStatus.COMPLETED else 0.0


def pause(p: Pause) -> PauseHistoryResponse:
    return PauseHistoryResponse(
        id=str(p.id),
        run_id=str(p.run_id),
        node_id=p.node_id,
        pause_message=p.message,
        pause_time=p.pause_time,
        resume_time=p.resume_time,
        resume_user_id=p.resume_user_id,
        resume_action=PauseAction(p.resume_action) if p.resume_action else None,
        input_data=p.input_data,
        comments=p.comments,
        decided_by=_sid(p.decided_by),
    )


def paused(r: Run, p: Pause, wf: Workflow) -> PausedWorkflowResponse:
    return PausedWorkflowResponse(
        run=run(r), current_pause=pause(p), workflow=WorkflowDefinition.model_validate(wf.definition)
    )


def dataset(ds: Dataset) -> DatasetResponse:
    # Datasets are immutable once uploaded, so both timestamps are the upload time (as PySpur).
    return DatasetResponse(
        id=str(ds.id),
        name=ds.name,
        description=ds.description,
        filename=ds.file_name,
        created_at=ds.uploaded_at,
        updated_at=ds.uploaded_at,
        format=ds.format,
        columns=list(ds.columns),
        row_count=ds.row_count,
    )


def output_file(of: OutputFile, line_count: int) -> OutputFileResponse:
    return OutputFileResponse(
        id=str(of.id),
        file_name=of.file_name,
        created_at=of.created_at,
        updated_at=of.updated_at,
        run_id=_sid(of.run_id),
        line_count=line_count,
    )
