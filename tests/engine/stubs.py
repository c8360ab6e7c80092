"""Stand-ins for the worker's activities, registered under the real activity names.

The engine tests drive the real workflow classes on a Temporal dev server; only the activities
(PostgreSQL writes and the Python sandbox) are replaced by these, which record what they received.
This module is also the one place the engine tests import the Temporal payload models from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from run_status import RunStatus
from workflows.batch_workflow import BatchChunkWorkflow, BatchWorkflow
from workflows.contracts import (
    BatchInput,
    CreateChildRunInput,
    Decision,
    DecisionResult,
    FinalizeBatchInput,
    FinalizeInput,
    LoadRowsInput,
    ProgressInput,
    PythonBatchInput,
    PythonBatchResult,
    PythonItem,
    PythonNodeInput,
    RecordDecisionInput,
    RecordPauseInput,
    RecordRowsInput,
    RunInput,
    RunResult,
    SubworkflowSnapshot,
    TaskRecord,
)
from workflows.definition import WorkflowDefinition
from workflows.run_workflow import RunWorkflow

__all__ = [
    "WORKFLOWS",
    "BatchInput",
    "Decision",
    "DecisionResult",
    "PythonCall",
    "RunInput",
    "RunResult",
    "Stubs",
    "SubworkflowSnapshot",
    "TaskRecord",
    "UserError",
    "WorkflowDefinition",
]

WORKFLOWS = [RunWorkflow, BatchWorkflow, BatchChunkWorkflow]

# What a Python node "computes" in a test: (node id, inputs) -> outputs, or raise UserError.
PythonBehaviour = Callable[[str, dict[str, Any]], dict[str, Any]]


class UserError(Exception):
    """Raised by a test's PythonBehaviour: the user's code failed (as the sandbox would report it)."""


def doubles(node_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The default behaviour: every Python node outputs y = 2 * the InputNode's x."""
    return {"y": 2 * inputs["input_node"]["x"]}


@dataclass
class PythonCall:
    arg: PythonNodeInput
    local: bool


@dataclass
class Stubs:
    """One test's activities; each list holds the arguments of every call, in order."""

    python: PythonBehaviour = doubles
    # Node ids whose fast-path (local) call reports the sandbox's wall-time limit, as a slow node would.
    slow: set[str] = field(default_factory=set)
    rows: list[dict[str, Any]] = field(default_factory=list)
    python_calls: list[PythonCall] = field(default_factory=list)
    batch_calls: list[PythonBatchInput] = field(default_factory=list)
    finalized: list[FinalizeInput] = field(default_factory=list)
    progress: list[ProgressInput] = field(default_factory=list)
    pauses: list[RecordPauseInput] = field(default_factory=list)
    decisions: list[RecordDecisionInput] = field(default_factory=list)
    child_runs: list[CreateChildRunInput] = field(default_factory=list)
    row_loads: list[LoadRowsInput] = field(default_factory=list)
    recorded_rows: list[RecordRowsInput] = field(default_factory=list)
    batch_finalized: list[FinalizeBatchInput] = field(default_factory=list)
    # How many finalize calls the "database" refuses for their values (as the real activity reports it).
    refuse_finalize: int = 0

    @activity.defn(name="run_python_node")
    async def run_python_node(self, arg: PythonNodeInput) -> dict[str, Any]:
        local = activity.info().is_local
        self.python_calls.append(PythonCall(arg, local))
        if local and arg.node_id in self.slow:
            raise ApplicationError("Wall time limit exceeded", type="timeout", non_retryable=True)
        try:
            return self.python(arg.node_id, arg.inputs)
        except UserError as err:
            raise ApplicationError(f"UserError: {err}", type="user_error", non_retryable=True) from err

    @activity.defn(name="run_python_batch")
    async def run_python_batch(self, arg: PythonBatchInput) -> PythonBatchResult:
        self.batch_calls.append(arg)
        items = []
        for inputs in arg.items:
            try:
                items.append(PythonItem(outputs=self.python("", inputs)))
            except UserError as err:
                items.append(PythonItem(error=f"UserError: {err}", kind="user_error"))
        return PythonBatchResult(items=items)

    @activity.defn(name="finalize_run")
    async def finalize_run(self, arg: FinalizeInput) -> RunResult:
        self.finalized.append(arg)
        if self.refuse_finalize > 0:
            self.refuse_finalize -= 1
            raise ApplicationError("value refused: U+0000", type="data_error", non_retryable=True)
        return RunResult(run_id=arg.run_id, status=arg.status, outputs={}, error=arg.error)

    @activity.defn(name="record_progress")
    async def record_progress(self, arg: ProgressInput) -> None:
        self.progress.append(arg)

    @activity.defn(name="record_pause")
    async def record_pause(self, arg: RecordPauseInput) -> None:
        self.pauses.append(arg)

    @activity.defn(name="record_decision")
    async def record_decision(self, arg: RecordDecisionInput) -> None:
        self.decisions.append(arg)

    @activity.defn(name="create_child_run")
    async def create_child_run(self, arg: CreateChildRunInput) -> None:
        self.child_runs.append(arg)

    @activity.defn(name="load_dataset_rows")
    async def load_dataset_rows(self, arg: LoadRowsInput) -> list[dict[str, Any]]:
        self.row_loads.append(arg)
        return self.rows[arg.start : arg.start + arg.limit]

    @activity.defn(name="record_batch_rows")
    async def record_batch_rows(self, arg: RecordRowsInput) -> int:
        self.recorded_rows.append(arg)
        return len(arg.rows)

    @activity.defn(name="finalize_batch")
    async def finalize_batch(self, arg: FinalizeBatchInput) -> RunResult:
        """Settles the batch the way the database would: COMPLETED only if every row completed."""
        self.batch_finalized.append(arg)
        rows = [r for call in self.recorded_rows for r in call.rows]
        if arg.canceled:
            status = RunStatus.CANCELED
        elif len(rows) == len(self.rows) and all(r.status == RunStatus.COMPLETED for r in rows):
            status = RunStatus.COMPLETED
        else:
            status = RunStatus.FAILED
        return RunResult(run_id=arg.run_id, status=status, outputs={})

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.run_python_node,
            self.run_python_batch,
            self.finalize_run,
            self.record_progress,
            self.record_pause,
            self.record_decision,
            self.create_child_run,
            self.load_dataset_rows,
            self.record_batch_rows,
            self.finalize_batch,
        ]
