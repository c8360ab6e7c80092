"""What a node kind is: its catalogue entry, its roles in a graph, and its behaviour.

A kind is one `NodeHandler` subclass in a module of this package, registered by one line in
`workflows.nodes`. Handlers are workflow code: deterministic, no I/O (pydantic, temporalio and the
workflows' own pure modules only). `workflows.graph` imports the catalogue, which imports every
kind, so a kind never imports the graph or the catalogue at run time: what it needs of the run
(plans, states, writes, pauses) it gets through `RunScope`.

Adding a kind: its module here (handler and config model) and its tests, plus one import and one
entry in `workflows.nodes.HANDLERS`. A kind whose work is an activity also declares the activity in
`workflows.contracts` (input and output models, one abstract method of an activity contract) and
implements it in `activities/` (a new implementing class is one more line in `activities/registry.py`).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.contracts import Decision, RunInput, TaskRecord
from workflows.definition import WorkflowDefinition, WorkflowNode
from workflows.node_configs import NodeConfig
from workflows.node_kinds.fields import NodeEvaluationError, validated_config

if TYPE_CHECKING:
    from workflows.graph import GraphPlan, RunState
    from workflows.node_kinds.python_func import PythonBatcher

ConfigT = TypeVar("ConfigT", bound=NodeConfig)
ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")
NodeOutput = dict[str, Any]


class NodeKind(StrEnum):
    PURE = "pure"  # evaluated inline in workflow code
    ACTIVITY = "activity"  # runs as a Temporal activity
    CONTROL = "control"  # waits on Temporal messages (pauses), runs bodies or child runs


@dataclass
class Pause:
    """An open pause of a node waiting for a person; the `decide` update fills `decision`."""

    node_id: str
    seq: int
    decision: Decision | None = None
    recorded: bool = False


class RunScope(Protocol):
    """What the scheduler (`driver.GraphRunner`) offers a node that runs outside the inline pass."""

    @property
    def inp(self) -> RunInput: ...

    @property
    def batcher(self) -> PythonBatcher | None: ...

    def unflushed(self) -> list[TaskRecord]:
        """Task records changed since they were last handed to an activity for writing."""
        ...

    async def write(self, write: Callable[[Any, ArgT], Awaitable[None]], arg: ArgT, summary: str) -> None:
        """A database write, when the run is stored."""
        ...

    def open_pause(self, node_id: str) -> Pause: ...

    def close_pause(self, node_id: str) -> None: ...

    def plan(self, definition: WorkflowDefinition) -> GraphPlan: ...

    def body_plan(self, state: RunState, node: WorkflowNode) -> GraphPlan:
        """The plan of a node's body (its children)."""
        ...

    def first_output_node(self, definition: WorkflowDefinition) -> WorkflowNode | None: ...

    def new_state(self, plan: GraphPlan, scope: str) -> RunState: ...

    async def drive(self, state: RunState, payload: dict[str, Any]) -> None: ...

    def node_plan(self, definition: WorkflowDefinition, node_id: str) -> GraphPlan:
        """A plan of one node of `definition` alone (an agent's tool call)."""
        ...

    async def run_node(self, state: RunState, node_id: str, inputs: dict[str, Any]) -> None:
        """Run one node of `state` on these inputs as the scheduler runs any node (inline, as an
        activity, a child run), settling its record."""
        ...


def object_schema(title: str, description: str | None = None, *, open_: bool = False) -> dict[str, Any]:
    """The JSON schema pydantic gives PySpur's (empty) node input/output model classes."""
    schema: dict[str, Any] = {"properties": {}, "title": title, "type": "object"}
    if description:
        schema["description"] = description
    if open_:
        schema["additionalProperties"] = True
    return schema


class NodeHandler(Generic[ConfigT]):
    """One node kind. Class attributes describe it; the methods its kind uses are overridden."""

    # The catalogue entry (`GET /node/supported_types/`, in PySpur's words). PySpur derives the
    # acronym from the class's snake name and the colour from md5(class name).
    node_type: ClassVar[str]
    display_name: ClassVar[str]
    group: ClassVar[str]
    kind: ClassVar[NodeKind]
    config_model: type[ConfigT]
    acronym: ClassVar[str]
    color: ClassVar[str]
    input_schema: ClassVar[dict[str, Any]]
    output_schema: ClassVar[dict[str, Any]]
    # A kind outside the runnable set is listed but refused when a definition is saved.
    implemented: ClassVar[bool] = True

    # Roles the graph code asks about instead of comparing type names.
    is_input: ClassVar[bool] = False  # the graph's entry: its output is the run's input
    is_output: ClassVar[bool] = False  # its output is the result of the run, a loop body or child run
    # Its output maps route names to payloads; each outgoing link takes the route its handle names.
    routes: ClassVar[bool] = False
    # Runs when any predecessor sent something (every other kind is skipped when one sent nothing).
    takes_partial_inputs: ClassVar[bool] = False
    pauses: ClassVar[bool] = False  # waits for a person: runs nobody can answer must not reach one
    runs_child: ClassVar[bool] = False  # runs another stored workflow as a child run
    has_body: ClassVar[bool] = False  # the nodes whose parent_id it is form a body it drives
    # Its activity writes the run's unflushed progress as it starts (no separate progress write).
    flushes_progress: ClassVar[bool] = False
    # Its children are tools it calls (AgentNode), not a body it drives: checked by `tool_problems`.
    has_tools: ClassVar[bool] = False

    def config(self, node: WorkflowNode) -> ConfigT:
        """The node's typed config (pydantic may coerce stored values such as "5" or "false").

        Raises:
            InvalidDefinition: the config does not fit its model.
        """
        return validated_config(node, self.config_model)

    def check(self, node: WorkflowNode, config: ConfigT) -> None:
        """Definition-time checks beyond the config model.

        Raises:
            InvalidDefinition: naming the node and the fault.
        """

    def check_in_graph(self, node: WorkflowNode, config: ConfigT, predecessor_titles: set[str]) -> None:
        """Definition-time checks that need the node's place in its graph (the titles its input is keyed by).

        Raises:
            InvalidDefinition: naming the node and the fault.
        """

    def tool_problems(self, node: WorkflowNode, tools: WorkflowDefinition) -> list[str]:
        """Faults of the tools of a kind with `has_tools` (its children, or its config's subworkflow)."""
        return []

    def waits_for_approval(self, tools: WorkflowDefinition) -> bool:
        """Whether a kind with `has_tools` may wait for a person to approve a tool call."""
        return False

    def catalogue_extra(self) -> dict[str, Any]:
        """Keys a kind adds to its `GET /node/supported_types/` entry (PySpur's LLM node: `model_constraints`)."""
        return {}

    def route_names(self, node: WorkflowNode) -> set[str]:
        """The routes a link leaving this node may name (kinds with `routes`)."""
        return set()

    def route_payload(self, output: Mapping[str, Any], source_handle: str) -> dict[str, Any] | None:
        """What the link named `source_handle` carries from this node's output (kinds with
        `routes`): the route's payload, or None when the route was not taken.

        Raises:
            NodeEvaluationError: no such route.
        """
        raise NodeEvaluationError(f"A {self.node_type} has no routes")

    def evaluate(self, node: WorkflowNode, config: ConfigT, inputs: dict[str, Any]) -> NodeOutput | None:
        """A PURE kind's output on `{predecessor title: output}` (copied, none of them None unless
        `takes_partial_inputs`); None skips the node.

        Raises:
            NodeEvaluationError: the node cannot produce its output.
        """
        raise NodeEvaluationError(f"Node '{node.id}' ({node.node_type}) is not evaluated inline")

    def start(
        self, run: RunScope, state: RunState, node_id: str, inputs: dict[str, Any]
    ) -> Coroutine[Any, Any, NodeOutput]:
        """An ACTIVITY or CONTROL kind's run, as a coroutine the scheduler awaits in a task.

        What must be in place before anything else runs (a pause's bookkeeping) is done here,
        synchronously; the coroutine's result completes the node unless it settled the node itself.
        """
        return self.run(run, state, node_id, inputs)

    async def run(self, run: RunScope, state: RunState, node_id: str, inputs: dict[str, Any]) -> NodeOutput:
        raise NodeEvaluationError(f"Node '{node_id}' ({self.node_type}) does not run outside the inline pass")


def copied(value: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(value))


# A database write retries with backoff while the database is away, for about an hour (120 attempts,
# 30 s apart at most), and then fails the execution (the reconciler records its end) instead of
# looping for ever. A value the database refuses is not retried at all (`data_error`, non-retryable).
DB_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=120)
DATA_ERROR = "data_error"


async def db_write(write: Callable[[Any, ArgT], Awaitable[ResultT]], arg: ArgT, summary: str) -> ResultT:
    """A database write as a local activity: it runs inside the workflow task (no round trip) and
    retries with backoff while the database is away (`DB_RETRY`)."""
    return await workflow.execute_local_activity_method(
        write,
        arg,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=DB_RETRY,
        summary=summary,
    )


def refused_data(err: BaseException) -> str | None:
    """The database's refusal of a write (an activity failure of type `data_error`), or None."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError) and cause.type == DATA_ERROR:
        return cause.message
    return None
