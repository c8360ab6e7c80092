"""Request and response models of the PySpur-compatible workflow API (field names as PySpur 0.1.18)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from run_status import PauseAction, RunStatus, StateAxis, TaskStatus
from workflows.definition import WorkflowDefinition


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def _aware_utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


# PySpur 0.1.18 serialises its timestamps as naive UTC ("2026-11-22T17:55:16.393904"), and its web UI
# appends "Z" before parsing, so an offset on the wire ("...ZZ") crashes the editor.
# The OpenAPI document says so: "date-time" (RFC 3339) requires an offset, which these do not carry.
Timestamp = Annotated[
    datetime,
    AfterValidator(_naive_utc),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$",
            "description": "UTC without an offset, as PySpur 0.1.18 sends it",
        },
        mode="serialization",
    ),
]
# Its pause-history times are the exception: timezone-aware, serialised with "Z".
PauseTimestamp = Annotated[datetime, AfterValidator(_aware_utc)]


class WorkflowCreateRequest(BaseModel):
    name: str = Field("", max_length=500)
    description: str = ""
    definition: WorkflowDefinition | None = None


class DefinitionProblem(BaseModel):
    """A fault that keeps a stored draft from running: the node it is on (null: the graph as a whole)."""

    node_id: str | None
    detail: str


class WorkflowResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str | None
    definition: WorkflowDefinition
    created_at: Timestamp
    updated_at: Timestamp
    # Beyond PySpur (its clients ignore it): why the stored definition cannot run yet; empty when it can.
    problems: list[DefinitionProblem] = []


class WorkflowVersionResponse(BaseModel):
    version: int
    name: str
    description: str | None
    definition: Any
    definition_hash: str
    created_at: Timestamp
    updated_at: Timestamp


class OutputVariable(BaseModel):
    node_id: str
    variable_name: str
    prefixed_variable: str


class StartRunRequest(BaseModel):
    initial_inputs: dict[str, dict[str, Any]] | None = None
    parent_run_id: str | None = None
    files: dict[str, list[str]] | None = None


class BatchRunRequest(BaseModel):
    dataset_id: str = Field(min_length=1, max_length=100)
    # PySpur sets no bounds; 1..100 keeps a batch from crowding out every other run on the workers.
    mini_batch_size: int = Field(default=10, ge=1, le=100)


class PartialRunRequest(BaseModel):
    node_id: str = Field(min_length=1, max_length=200)
    rerun_predecessors: bool = False
    initial_inputs: dict[str, dict[str, Any]] | None = None
    # PySpur accepts lists (loop outputs) here and ignores them; this service refuses them by name.
    partial_outputs: dict[str, Any] | None = None


class TaskResponse(BaseModel):
    id: str
    run_id: str
    node_id: str
    parent_task_id: str | None = None
    status: TaskStatus
    inputs: Any = None
    outputs: Any = None
    error: str | None = None
    start_time: Timestamp | None = None
    end_time: Timestamp | None = None
    subworkflow: Any = None
    subworkflow_output: Any = None
    # Loop-body tasks: the iteration (1-based) of the loop named by `parent_task_id`.
    iteration: int | None = None
    # LLM nodes: {model, prompt_tokens, completion_tokens, cost_usd} (PySpur clients ignore it).
    usage: dict[str, Any] | None = None


class RunResponse(BaseModel):
    id: str
    workflow_id: str
    workflow_version_id: str | None
    workflow_version: WorkflowVersionResponse | None
    status: RunStatus
    start_time: Timestamp
    end_time: Timestamp | None
    initial_inputs: dict[str, Any] | None
    outputs: dict[str, Any] | None
    tasks: list[TaskResponse]
    parent_run_id: str | None
    run_type: str
    output_file_id: str | None
    input_dataset_id: str | None
    message: str | None = None
    error: str | None = None
    duration: float | None
    percentage_complete: float
    # Batch parents: rows in the dataset, rows finished, and how many of those did not complete.
    rows_total: int | None = None
    rows_done: int | None = None
    rows_failed: int | None = None
    # The LLM usage of the run's tasks summed: {prompt_tokens, completion_tokens, cost_usd}.
    usage: dict[str, Any] | None = None


class RunStateChangeResponse(BaseModel):
    """One move of a run (`GET /run/{id}/state_history/`): which state column, from what to what,
    caused by whom (a user id, or engine / reconciler / schedule) and why."""

    model_config = ConfigDict(from_attributes=True)

    axis: StateAxis
    from_state: str | None
    to_state: str | None
    cause: str
    reason: str | None
    attempt: int
    at: Timestamp


class ResumeRunRequest(BaseModel):
    inputs: dict[str, Any]
    user_id: str = Field(max_length=200)
    action: PauseAction
    comments: str | None = None
    node_id: str | None = Field(None, max_length=200)


class PauseHistoryResponse(BaseModel):
    id: str
    run_id: str
    node_id: str
    pause_message: str | None
    pause_time: PauseTimestamp
    resume_time: PauseTimestamp | None
    resume_user_id: str | None
    resume_action: PauseAction | None
    input_data: dict[str, Any] | None
    comments: str | None
    decided_by: str | None = (
        None  # the authenticated user (not in PySpur: `resume_user_id` is the body's word)
    )


class PausedWorkflowResponse(BaseModel):
    run: RunResponse
    current_pause: PauseHistoryResponse
    workflow: WorkflowDefinition


class DatasetResponse(BaseModel):
    """PySpur's `DatasetResponseSchema`; `filename` is the uploaded file's name (never a server path).
    `format`, `columns` and `row_count` are extras."""

    id: str
    name: str
    description: str | None
    filename: str
    created_at: Timestamp
    updated_at: Timestamp
    format: str
    columns: list[str]
    row_count: int


class OutputFileResponse(BaseModel):
    """PySpur's `OutputFileResponseSchema`; `run_id` (the batch run) and `line_count` are extras."""

    id: str
    file_name: str
    created_at: Timestamp
    updated_at: Timestamp
    run_id: str | None
    line_count: int


class MessageResponse(BaseModel):
    message: str


class TemplateSchema(BaseModel):
    name: str
    description: str
    features: list[str]
    file_name: str = Field(max_length=255)


class FileResponseSchema(BaseModel):
    name: str
    path: str
    size: int
    created: Timestamp
    workflow_id: str | None = None
