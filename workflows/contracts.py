"""The Temporal contracts: every payload that crosses Temporal, and the typed interfaces of the
activities and of `RunWorkflow`, imported by both the workflow code that calls them and the code
that implements them, so mypy checks each edge from both sides. Pydantic and temporalio only, no I/O.

Names given here are the activity, workflow, update and query types recorded in histories: they
must never change (the replay test fails if they do).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from temporalio import activity, workflow

from run_status import PauseAction, RunStatus, TaskStatus
from workflows.definition import WorkflowDefinition


class NodePolicy(BaseModel):
    """Timeouts and retries for node activities; chosen by settings at start, frozen for the run."""

    heartbeat_timeout_seconds: float = 5.0
    start_to_close_seconds: float = 120.0
    max_attempts: int = 3
    wall_seconds: float = 60.0
    # Python nodes first run as a local activity bounded by this many seconds (0: never).
    fast_path_seconds: float = 1.0
    # An LLM call silent this long is retried elsewhere. Generous, since a retried call is paid twice; a
    # cancel still reaches it within the worker's heartbeat throttle (WORKER_HEARTBEAT_THROTTLE_SECONDS).
    llm_heartbeat_timeout_seconds: float = 10.0
    # Where LLM calls are scheduled: a queue whose workers hold many waiting calls (None: the run's own
    # queue, as for runs started before it existed).
    llm_task_queue: str | None = None


class SubworkflowSnapshot(BaseModel):
    """A workflow a SubworkflowNode runs, pinned when the top-level run starts."""

    workflow_id: str
    name: str
    version_id: str | None = None
    definition: WorkflowDefinition


class RunInput(BaseModel):
    run_id: str
    tenant_id: str
    workflow_id: str
    workflow_name: str = ""
    definition: WorkflowDefinition
    input_payload: dict[str, Any]
    policy: NodePolicy = Field(default_factory=NodePolicy)
    # Outputs given for nodes, which are then not executed (partial runs, resumes).
    precomputed: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Partial runs: only this node and the upstream nodes it needs are part of the run.
    target_node_id: str | None = None
    # False for runs that leave nothing in the database (partial runs, batch rows: their rows are
    # written by the batch).
    persist: bool = True
    # Every workflow reachable through SubworkflowNodes, by workflow id.
    subworkflows: dict[str, SubworkflowSnapshot] = Field(default_factory=dict)
    triggered_by: str | None = None
    # v1 retry/resume start another execution of the same run: its writes name their attempt, so a
    # late write of an earlier attempt changes nothing. None: the run has one attempt (no check).
    attempt: int | None = None


class CreateChildRunInput(BaseModel):
    run_id: str
    parent_run_id: str
    tenant_id: str
    workflow_id: str
    version_id: str | None
    initial_inputs: dict[str, Any]
    triggered_by: str | None = None
    start_time: datetime


class TaskRecord(BaseModel):
    node_id: str
    seq: int
    # "" at top level; "<loop id>#<iteration>" inside a loop body (nested loops joined by "/").
    scope: str = ""
    status: TaskStatus = TaskStatus.PENDING
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    error: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    # A loop node's body definition and its history `{body node id: [outputs per iteration]}`.
    subworkflow: dict[str, Any] | None = None
    subworkflow_output: dict[str, Any] | None = None
    # LLM nodes: {model, prompt_tokens, completion_tokens, cost_usd}.
    usage: dict[str, Any] | None = None


class PythonNodeInput(BaseModel):
    run_id: str
    attempt: int | None = None
    node_id: str
    code: str
    inputs: dict[str, Any]
    output_schema: dict[str, str] | None = None
    limits: dict[str, float] = Field(default_factory=dict)
    # False when the run is not stored (partial runs, batch rows): the activity then writes nothing.
    record: bool = True
    # Tasks the workflow settled since its last write, flushed with this node's RUNNING row in one
    # transaction so the database shows progress without an extra round trip.
    tasks: list[TaskRecord] = Field(default_factory=list)


class PythonBatchInput(BaseModel):
    """The same Python node for several batch rows at once: one sandboxed call, one result each."""

    code: str
    items: list[dict[str, Any]]
    output_schema: dict[str, str] | None = None
    limits: dict[str, float] = Field(default_factory=dict)


class PythonItem(BaseModel):
    outputs: dict[str, Any] | None = None
    error: str | None = None
    kind: str | None = None


class PythonBatchResult(BaseModel):
    items: list[PythonItem]


class FinalizeInput(BaseModel):
    run_id: str
    attempt: int | None = None
    status: RunStatus
    outputs: dict[str, Any]
    tasks: list[TaskRecord]
    error: str | None = None
    end_time: datetime


class RunResult(BaseModel):
    run_id: str
    status: RunStatus
    outputs: dict[str, Any]
    error: str | None = None
    # False when the database already held another terminal state (first terminal write wins).
    recorded: bool = True
    # False when `outputs` was cut to the OutputNodes' outputs to keep the result small (the
    # database holds them all).
    outputs_complete: bool = True


class PauseRecord(BaseModel):
    node_id: str
    seq: int
    message: str | None = None
    input_data: dict[str, Any] | None = None
    pause_time: datetime
    timeout_at: datetime | None = None


class RecordPauseInput(BaseModel):
    run_id: str
    attempt: int | None = None
    pause: PauseRecord
    tasks: list[TaskRecord]


class Decision(BaseModel):
    """The argument of the `decide` update: a person's answer to an open pause."""

    action: PauseAction
    inputs: dict[str, Any] = Field(default_factory=dict)
    user_id: str
    comments: str | None = None
    node_id: str | None = None
    # Filled by the API from the credentials, never from the request body.
    decided_by: str | None = None


class DecisionResult(BaseModel):
    node_id: str
    seq: int
    action: PauseAction


class RecordDecisionInput(BaseModel):
    run_id: str
    attempt: int | None = None
    seq: int
    # None when the pause closed without a decision being taken by a person (timeout "fail").
    action: PauseAction | None
    user_id: str | None
    comments: str | None
    inputs: dict[str, Any] | None
    decided_by: str | None = None
    resume_time: datetime
    tasks: list[TaskRecord]
    # Whether other pauses are still open: only the last one back moves the run to RUNNING.
    still_paused: bool


class ProgressInput(BaseModel):
    run_id: str
    attempt: int | None = None
    tasks: list[TaskRecord]


class BatchInput(BaseModel):
    """A batch parent's input; `next_row` moves on as chunks finish (and across continue-as-new)."""

    run_id: str
    tenant_id: str
    workflow_id: str
    workflow_name: str = ""
    version_id: str | None = None
    triggered_by: str | None = None
    definition: WorkflowDefinition
    dataset_id: str
    output_file_id: str
    row_count: int
    mini_batch_size: int
    # Rows per child workflow: bounds each chunk's history; the parent continues-as-new between chunks.
    chunk_rows: int = 500
    policy: NodePolicy = Field(default_factory=NodePolicy)
    subworkflows: dict[str, SubworkflowSnapshot] = Field(default_factory=dict)
    next_row: int = 0
    # Rows recorded by earlier chunks (carried across continue-as-new for the Temporal UI's details).
    rows_done: int = 0
    rows_failed: int = 0


class BatchChunkInput(BaseModel):
    batch: BatchInput
    start: int
    end: int


class ChunkResult(BaseModel):
    # The first row this chunk did not run (== end unless it stopped early to keep its history small).
    next_row: int
    # Rows this chunk recorded, for the parent's current details in the Temporal UI.
    rows_done: int = 0
    rows_failed: int = 0


class LoadRowsInput(BaseModel):
    dataset_id: str
    start: int
    limit: int


class BatchRow(BaseModel):
    """One dataset row's run, as the batch records it (a child run, its tasks and its output line)."""

    idx: int
    run_id: str
    status: RunStatus
    initial_inputs: dict[str, Any]
    outputs: dict[str, Any]
    error: str | None = None
    start_time: datetime
    end_time: datetime
    tasks: list[TaskRecord] = Field(default_factory=list)


class RecordRowsInput(BaseModel):
    parent_run_id: str
    tenant_id: str
    workflow_id: str
    version_id: str | None = None
    triggered_by: str | None = None
    output_file_id: str
    rows: list[BatchRow]


class FinalizeBatchInput(BaseModel):
    run_id: str
    canceled: bool = False
    end_time: datetime


# -- document ingestion ----------------------------------------------------------------------------
TEXTUAL = ("text/", "application/json", "application/x-yaml", "application/yaml", "application/xml")


def is_textual(media_type: str, name: str) -> bool:
    """Whether ingestion extracts an upload's text (it is then given to the graph as `text`)."""
    return media_type.startswith(TEXTUAL) or name.lower().endswith((".md", ".txt", ".csv", ".json", ".yaml"))


class IngestInput(BaseModel):
    document_id: str
    # Set when the document is an upload into a v1 run's inputs/ folder.
    run_id: str | None = None


class SettleResult(BaseModel):
    """What settling a run's inputs decided: a run to start (auto_start), or nothing to do."""

    run_input: RunInput | None = None
    execution_timeout_seconds: float | None = None
    run_type: str = "interactive"


# -- LLM calls -------------------------------------------------------------------------------------


class LlmCallInput(BaseModel):
    """One LLM call. It names the tenant, never a key: the activity reads the keys at call time."""

    tenant_id: str
    node_id: str
    # The node's config (SingleLLMCallNode's shape) and its input `{predecessor title: output}`.
    config: dict[str, Any]
    inputs: dict[str, Any]
    # Task rows the workflow settled since its last write: written beside the call (not before it).
    run_id: str | None = None
    attempt: int | None = None
    tasks: list[TaskRecord] = Field(default_factory=list)
    # An agent's turn: the function schemas it may call, and the conversation after the prompt (the
    # assistant's tool calls and the tools' answers); the prompt itself is rendered again from
    # `config` and `inputs`, so the history holds it once.
    tools: list[dict[str, Any]] | None = None
    messages: list[dict[str, Any]] = Field(default_factory=list)


class LlmCallResult(BaseModel):
    output: dict[str, Any]
    usage: dict[str, Any]
    # An agent's turn: the assistant's message as the provider sent it (`tool_calls` when it asked
    # for tools; then `output` is empty).
    message: dict[str, Any] | None = None


# -- interfaces ------------------------------------------------------------------------------------


class _ActivityContract:
    """An activity interface: workflow code calls its methods with `workflow.execute_activity_method`;
    a subclass in `activities/` implements them all (mypy checks the overrides' signatures, and an
    implementation that leaves one out cannot be instantiated).

    An override is registered under the interface's activity name, so each name is written once.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__mro__[1:]:
            for attr, declared in vars(base).items():
                defn = activity._Definition.from_callable(declared) if callable(declared) else None
                own = vars(cls).get(attr)
                if defn is not None and own is not None and own is not declared:
                    activity.defn(name=defn.name)(own)

    def activities(self) -> list[Callable[..., Any]]:
        """Every activity of the interface, bound to this implementation, for a worker to register."""
        cls = type(self)
        return [
            getattr(self, attr)
            for attr in dir(cls)
            if callable(getattr(cls, attr)) and activity._Definition.from_callable(getattr(cls, attr))
        ]


class RunActivitiesContract(_ActivityContract, ABC):
    """Activities of runs and batches (implemented by `activities.run_activities.RunActivities`)."""

    @activity.defn(name="run_python_node")
    @abstractmethod
    async def run_python_node(self, arg: PythonNodeInput) -> dict[str, Any]:
        """The node's output (its code's returned object)."""
        raise NotImplementedError

    @activity.defn(name="run_python_batch")
    @abstractmethod
    async def run_python_batch(self, arg: PythonBatchInput) -> PythonBatchResult:
        raise NotImplementedError

    @activity.defn(name="finalize_run")
    @abstractmethod
    async def finalize_run(self, arg: FinalizeInput) -> RunResult:
        raise NotImplementedError

    @activity.defn(name="create_child_run")
    @abstractmethod
    async def create_child_run(self, arg: CreateChildRunInput) -> None:
        raise NotImplementedError

    @activity.defn(name="load_dataset_rows")
    @abstractmethod
    async def load_dataset_rows(self, arg: LoadRowsInput) -> list[dict[str, Any]]:
        raise NotImplementedError

    @activity.defn(name="record_batch_rows")
    @abstractmethod
    async def record_batch_rows(self, arg: RecordRowsInput) -> int:
        """How many rows were recorded now (rows recorded before are not counted)."""
        raise NotImplementedError

    @activity.defn(name="finalize_batch")
    @abstractmethod
    async def finalize_batch(self, arg: FinalizeBatchInput) -> RunResult:
        raise NotImplementedError

    @activity.defn(name="record_progress")
    @abstractmethod
    async def record_progress(self, arg: ProgressInput) -> None:
        raise NotImplementedError

    @activity.defn(name="record_pause")
    @abstractmethod
    async def record_pause(self, arg: RecordPauseInput) -> None:
        raise NotImplementedError

    @activity.defn(name="record_decision")
    @abstractmethod
    async def record_decision(self, arg: RecordDecisionInput) -> None:
        raise NotImplementedError


class IngestActivitiesContract(_ActivityContract, ABC):
    """Activities of document ingestion (implemented by `activities.ingest_activities`)."""

    @activity.defn(name="ingest_document")
    @abstractmethod
    async def ingest_document(self, document_id: str) -> str:
        """The document's ingest status (COMPLETED or FAILED)."""
        raise NotImplementedError

    @activity.defn(name="settle_run_inputs")
    @abstractmethod
    async def settle_run_inputs(self, run_id: str) -> SettleResult:
        raise NotImplementedError


class LlmActivitiesContract(_ActivityContract, ABC):
    """LLM calls (implemented by `activities.llm_activities.LlmActivities`)."""

    @activity.defn(name="call_llm")
    @abstractmethod
    async def call_llm(self, arg: LlmCallInput) -> LlmCallResult:
        """The node's output (the reply's fields, checked against the node's schema) and its usage."""
        raise NotImplementedError


@workflow.defn(name="RunWorkflow")
class RunWorkflowContract:
    """How a run's execution is started, for workflow code that cannot import
    `workflows.run_workflow.RunWorkflow` (which subclasses it): child runs of SubworkflowNodes and
    the runs an upload starts. Its update and query are called on `RunWorkflow` itself."""

    @workflow.run
    async def run(self, inp: RunInput) -> RunResult:
        raise NotImplementedError
