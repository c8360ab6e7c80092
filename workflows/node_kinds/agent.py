"""AgentNode in PySpur 0.1.18's shape: an LLM call with tools, in a loop of at most `max_iterations`
model turns. Its tools are its child nodes (`parent_id` = the agent, as PySpur's editor saves them,
or the nodes of `config.subworkflow`), one function per tool named by the tool's title.

Durable where PySpur is not: each model turn is one `call_llm` activity and each tool call runs as
its node kind runs (through `RunScope.run_node`), recorded as a task under the agent's task (scope
`<agent id>#<call number>`), so a crash repeats no finished turn or tool. Several tool calls of one
turn run concurrently; their answers go back in the order the model asked. A tool marked
`requires_approval` waits for a person exactly as a HumanInterventionNode does (a pause on the tool
node: approve runs it, decline tells the model, override answers for it).

Where PySpur differs (all deliberate): a tool's parameters are its `input_schema` (`{field: type}`)
and its arguments are its input, not its config (PySpur lets the model set a tool's config, its code
included); a tool the model invents or arguments that do not fit go back to the model as a tool
error (PySpur fails the node), bounded by `max_iterations`; tool answers are JSON, not Python
reprs. As in PySpur, a failing tool fails the node, and a model that still asks for tools after
`max_iterations` turns fails it (PySpur fails there too, with a JSON parsing error).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError

from run_status import PauseAction, RunStatus, TaskStatus
from telemetry import in_workflow
from workflows.contracts import (
    Decision,
    RecordDecisionInput,
    RunActivitiesContract,
)
from workflows.definition import WorkflowDefinition, WorkflowNode
from workflows.node_kinds.base import NodeHandler, NodeKind, NodeOutput, RunScope, object_schema
from workflows.node_kinds.human_intervention import wait_for_decision
from workflows.node_kinds.single_llm_call import (
    SingleLLMCallNodeConfig,
    check_llm_config,
    check_template_titles,
    llm_call,
    record_usage,
)
from workflows.search_attributes import publish_status

if TYPE_CHECKING:
    from workflows.graph import RunState

_AGENT_JSON_SCHEMA = (
    '{"type": "object", "properties": {"output": {"type": "string"},'
    ' "tool_calls": {"type": "array", "items": {"type": "string"} } },'
    ' "required": ["output", "tool_calls"] }'
)
# OpenAI's rule for function names; PySpur names a tool by its node's title.
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_JSON_TYPES: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "string": ("string", str),
    "str": ("string", str),
    "integer": ("integer", int),
    "int": ("integer", int),
    "number": ("number", (int, float)),
    "float": ("number", (int, float)),
    "boolean": ("boolean", bool),
    "bool": ("boolean", bool),
    "array": ("array", list),
    "list": ("array", list),
    "object": ("object", dict),
    "dict": ("object", dict),
}
# The conversation goes into every turn's activity input, so the history grows with its square: a
# tool's answer is cut at MAX_TOOL_ANSWER characters and the node fails once the conversation passes
# MAX_CONVERSATION_BYTES, which keeps MAX_ITERATIONS turns far below Temporal's payload (2 MB) and
# history (50 MB) limits.
MAX_TOOL_ANSWER = 64 * 1024
MAX_CONVERSATION_BYTES = 512 * 1024
MAX_ITERATIONS = 50


class AgentNodeConfig(SingleLLMCallNodeConfig):
    """Configuration for the AgentNode.

    Extends SingleLLMCallNodeConfig with support for tools.
    """

    output_json_schema: str = Field(
        default=_AGENT_JSON_SCHEMA,
        title="Output JSON schema",
        description="The JSON schema for the output of the node",
    )
    subworkflow: dict[str, Any] | None = Field(None, description="Subworkflow containing tool nodes")
    max_iterations: int = Field(
        10,
        ge=1,
        le=MAX_ITERATIONS,
        description="Maximum number of tool calls the agent can make in a single run",
    )

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """PySpur's schema: `subworkflow` is its WorkflowDefinitionSchema (taken from PySpur 0.1.18),
        although the tools are normally the agent's child nodes."""
        schema = super().model_json_schema(*args, **kwargs)
        pyspur = _subworkflow_schema()
        schema["properties"]["subworkflow"] = copy.deepcopy(pyspur["property"])
        schema["$defs"] = dict(sorted({**schema["$defs"], **copy.deepcopy(pyspur["$defs"])}.items()))
        return schema


@functools.cache
def _subworkflow_schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(__file__).with_name("agent_subworkflow_schema.json").read_text())
    return data


class ToolSettings(BaseModel):
    """What the agent reads of a tool node's config (keys beside the node kind's own)."""

    model_config = ConfigDict(extra="ignore")

    description: str | None = None
    input_schema: dict[str, str] = Field(default_factory=dict)
    requires_approval: bool = False
    approval_message: str | None = None
    approval_timeout_seconds: int | None = Field(default=None, gt=0, le=10 * 365 * 24 * 3600)
    on_approval_timeout: Literal["approve", "decline", "fail"] = "decline"


def tool_settings(node: WorkflowNode) -> ToolSettings:
    return ToolSettings.model_validate(node.config)


def function_schema(node: WorkflowNode, settings: ToolSettings) -> dict[str, Any]:
    """The tool's function for the model: its title, its description, its input fields (all required)."""
    properties = {name: {"type": _JSON_TYPES[t][0]} for name, t in settings.input_schema.items()}
    return {
        "type": "function",
        "function": {
            "name": node.title,
            "description": settings.description or f"{node.node_type} '{node.title}'",
            "parameters": {"type": "object", "properties": properties, "required": list(properties)},
        },
    }


def parse_arguments(raw: str | None, settings: ToolSettings) -> tuple[dict[str, Any], str | None]:
    """The call's arguments, or the error the model is told (not JSON, not an object, a field missing
    or of the wrong type)."""
    try:
        args = json.loads(raw or "{}")
    except json.JSONDecodeError as err:
        return {}, f"the arguments are not JSON ({err.msg})"
    if not isinstance(args, dict):
        return {}, "the arguments must be a JSON object"
    for name, declared in settings.input_schema.items():
        if name not in args:
            return args, f"argument '{name}' is missing"
        expected, types = _JSON_TYPES[declared]
        value = args[name]
        if not isinstance(value, types) or (expected in ("integer", "number") and isinstance(value, bool)):
            return args, f"argument '{name}' should be {expected}, got {type(value).__name__}"
    return args, None


class AgentHandler(NodeHandler[AgentNodeConfig]):
    node_type = "AgentNode"
    display_name = "Agent"
    group = "AI"
    kind = NodeKind.CONTROL
    config_model = AgentNodeConfig
    acronym = "AGNT"
    color = "#fb8500"
    input_schema = object_schema("AgentNodeInput", open_=True)
    output_schema = object_schema("AgentNodeOutput")
    has_body = True
    has_tools = True
    flushes_progress = True

    def check(self, node: WorkflowNode, config: AgentNodeConfig) -> None:
        check_llm_config(node, config)

    def check_in_graph(
        self, node: WorkflowNode, config: AgentNodeConfig, predecessor_titles: set[str]
    ) -> None:
        check_template_titles(node, config, predecessor_titles)

    def tool_problems(self, node: WorkflowNode, tools: WorkflowDefinition) -> list[str]:
        where = f"Agent '{node.id}'"
        top = [n for n in tools.nodes if n.parent_id is None]
        if not top:
            return [f"{where} has no tools: give it child nodes (parent_id '{node.id}')"]
        found: list[str] = []
        names: dict[str, str] = {}
        for tool in top:
            kind = _kind_of(tool)
            if kind is None or kind.is_input or kind.is_output or kind.pauses or kind.routes or kind.has_body:
                found.append(f"{where}: a {tool.node_type} ('{tool.id}') cannot be a tool")
                continue
            if not _TOOL_NAME.match(tool.title):
                found.append(
                    f"{where}: tool '{tool.id}' is named by its title '{tool.title}', which must be 1-64 "
                    "letters, digits, '_' or '-'"
                )
            elif tool.title.lower() in names:
                found.append(
                    f"{where}: tools '{names[tool.title.lower()]}' and '{tool.id}' share the title '{tool.title}'"
                )
            names[tool.title.lower()] = tool.id
            try:
                settings = tool_settings(tool)
            except ValidationError as err:
                found.append(f"{where}: tool '{tool.id}': {err.errors()[0]['msg']}")
                continue
            unknown = sorted(t for t in settings.input_schema.values() if t not in _JSON_TYPES)
            if unknown:
                found.append(f"{where}: tool '{tool.id}' input_schema has unknown type '{unknown[0]}'")
        if any(link.source_id in names.values() or link.target_id in names.values() for link in tools.links):
            found.append(f"{where}: its tools are called by the model, not linked")
        return found

    def waits_for_approval(self, tools: WorkflowDefinition) -> bool:
        return any(n.config.get("requires_approval") is True for n in tools.nodes)

    async def run(self, run: RunScope, state: RunState, node_id: str, inputs: dict[str, Any]) -> NodeOutput:
        """The final answer's fields and `tool_calls` (the conversation's messages as JSON texts).

        Raises:
            ApplicationError: a tool failed, a turn failed, the conversation grew too large, or the
                model still asked for tools after `max_iterations` turns.
        """
        node = state.plan.by_id[node_id]
        config = self.config(node)
        # The graph imports the catalogue, which imports this module: looked up at call time.
        from workflows.graph import loop_body

        tools = loop_body(state.plan.definition, node)
        loop = _Loop(run, state, node, config, tools)
        try:
            return await loop.run(inputs)
        finally:
            record_usage(state, node_id, loop.usages)


def _kind_of(node: WorkflowNode) -> NodeHandler[Any] | None:
    # The catalogue imports this module: looked up at call time.
    from workflows import nodes

    found: NodeHandler[Any] | None = nodes.NODE_CATALOGUE.get(node.node_type)
    return found


class _Loop:
    """One run of an agent node: its conversation, its tools and its counters."""

    def __init__(
        self,
        run: RunScope,
        state: RunState,
        node: WorkflowNode,
        config: AgentNodeConfig,
        tools: WorkflowDefinition,
    ) -> None:
        self.run_scope = run
        self.state = state
        self.node = node
        self.config = config
        self.tools = {t.title.lower(): t for t in tools.nodes if t.parent_id is None}
        self.definition = tools
        self.schemas = [function_schema(t, tool_settings(t)) for t in self.tools.values()]
        self.messages: list[dict[str, Any]] = []
        self.usages: list[dict[str, Any]] = []
        self.calls = 0
        self.approvals = asyncio.Lock()  # one approval pause open at a time per agent
        prefix = f"{state.scope}/" if state.scope else ""
        self.scope = f"{prefix}{node.id}#"

    async def run(self, inputs: dict[str, Any]) -> NodeOutput:
        raw = self.config.model_dump()
        for turn in range(1, self.config.max_iterations + 1):
            tasks = self.run_scope.unflushed()
            result = await llm_call(
                self.run_scope,
                self.node.id,
                f"{self.node.title} turn {turn}",
                raw,
                inputs,
                tasks,
                tools=self.schemas,
                messages=self.messages,
            )
            self.usages.append(result.usage)
            message = result.message
            if message is None or not message.get("tool_calls"):
                final = {"role": "assistant", "content": json.dumps(result.output), "tool_calls": None}
                conversation = [*self.messages, final]
                texts = [
                    json.dumps(_pyspur_message(m))
                    for m in conversation
                    if m["role"] == "tool" or "tool_calls" in m
                ]
                return {**result.output, "tool_calls": texts}
            if turn == self.config.max_iterations:
                break
            self.messages.append(message)
            answers = await asyncio.gather(
                *(self._call(c, self._next_scope()) for c in message["tool_calls"])
            )
            self.messages.extend(answers)
            size = len(json.dumps(self.messages))
            if size > MAX_CONVERSATION_BYTES:
                raise ApplicationError(
                    f"Agent '{self.node.id}': the conversation reached {size} bytes after turn {turn}; "
                    f"at most {MAX_CONVERSATION_BYTES} are kept (tool answers are too large)",
                    type="agent_conversation_too_large",
                    non_retryable=True,
                )
        raise ApplicationError(
            f"Agent '{self.node.id}': the model still asked for tools after max_iterations "
            f"({self.config.max_iterations}) turns",
            type="agent_max_iterations",
            non_retryable=True,
        )

    def _next_scope(self) -> str:
        self.calls += 1
        return f"{self.scope}{self.calls}"

    async def _call(self, call: dict[str, Any], scope: str) -> dict[str, Any]:
        """Run one tool call; the tool message that answers it."""
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        tool = self.tools.get(name.lower())
        if tool is None:
            known = ", ".join(t.title for t in self.tools.values())
            return _answer(call, f"Error: there is no tool '{name}' (tools: {known})", error=True)
        settings = tool_settings(tool)
        args, problem = parse_arguments(function.get("arguments"), settings)
        if problem is not None:
            return _answer(call, f"Error: tool '{tool.title}': {problem}", error=True)
        state = self.run_scope.new_state(self.run_scope.node_plan(self.definition, tool.id), scope)
        if settings.requires_approval:
            async with self.approvals:
                decision = await self._approval(state, tool, settings, args)
            if decision.action == PauseAction.DECLINE:
                reason = f"Declined by {decision.user_id}" + (
                    f": {decision.comments}" if decision.comments else ""
                )
                state.decline(tool.id, reason, workflow.now())
                return _answer(call, f"The user declined this call of '{tool.title}'. {reason}", error=True)
            if decision.action == PauseAction.OVERRIDE:
                state.complete(tool.id, dict(decision.inputs), workflow.now())
                return _answer(call, json.dumps(decision.inputs))
            args = {**args, **decision.inputs}
        await self.run_scope.run_node(state, tool.id, args)
        record = state.records[tool.id]
        if record.status != TaskStatus.COMPLETED:
            raise ApplicationError(
                f"Agent '{self.node.id}': tool '{tool.title}' failed: {record.error}",
                type="agent_tool_failed",
                non_retryable=True,
            )
        return _answer(call, json.dumps(record.outputs))

    async def _approval(
        self, state: RunState, tool: WorkflowNode, settings: ToolSettings, args: dict[str, Any]
    ) -> Decision:
        """Pause on the tool node until a person decides (or the timeout decides for them), recording
        both ends as a HumanInterventionNode's pause is recorded.

        Raises:
            ApplicationError: the pause timed out and `on_approval_timeout` is "fail".
        """
        run = self.run_scope
        pause = run.open_pause(tool.id)
        now = workflow.now()
        details = {"agent": self.node.title, "tool": tool.title, "arguments": args}
        state.start(tool.id, args, now)
        state.pause(tool.id, details, now)
        timeout = settings.approval_timeout_seconds
        message = settings.approval_message or f"Agent '{self.node.title}' wants to call tool '{tool.title}'"
        await wait_for_decision(
            run,
            pause,
            f"{message} with arguments {json.dumps(args)}",
            details,
            timeout,
            f"approve {tool.title}",
        )
        now = workflow.now()
        decision = pause.decision
        failure = None
        if decision is None:
            text = f"No decision within {timeout} s"
            if settings.on_approval_timeout == "fail":
                failure = f"{text} (on_approval_timeout: fail)"
                state.fail(tool.id, failure, now)
            else:
                action = (
                    PauseAction.APPROVE if settings.on_approval_timeout == "approve" else PauseAction.DECLINE
                )
                decision = Decision(action=action, user_id="timeout", comments=text)
        in_workflow.event_span(
            "pause decided" if pause.decision else "pause timed out",
            {
                "node.id": tool.id,
                "pause.action": pause.decision.action.value if pause.decision else "TIMEOUT",
            },
        )
        if self.state.run_status() == RunStatus.RUNNING:
            publish_status(RunStatus.RUNNING)
        await run.write(
            RunActivitiesContract.record_decision,
            RecordDecisionInput(
                run_id=run.inp.run_id,
                attempt=run.inp.attempt,
                seq=pause.seq,
                action=pause.decision.action if pause.decision else None,
                user_id=pause.decision.user_id if pause.decision else None,
                comments=pause.decision.comments
                if pause.decision
                else (failure or (decision.comments if decision else None)),
                inputs=pause.decision.inputs if pause.decision else None,
                decided_by=pause.decision.decided_by if pause.decision else None,
                resume_time=now,
                tasks=run.unflushed(),
                still_paused=bool(self.state.paused()),
            ),
            f"decision {tool.title}",
        )
        pause.recorded = True
        if decision is None:
            raise ApplicationError(
                f"Agent '{self.node.id}': approval of tool '{tool.title}': {failure}",
                type="pause_timeout",
                non_retryable=True,
            )
        return decision


def _answer(call: dict[str, Any], content: str, error: bool = False) -> dict[str, Any]:
    """The tool message answering `call`; `error`: a refusal or a call that could not run (the
    anthropic/ route sends it as a `tool_result` with `is_error`, the chat route as its text)."""
    if len(content) > MAX_TOOL_ANSWER:
        content = content[:MAX_TOOL_ANSWER] + f" ... [cut: {len(content) - MAX_TOOL_ANSWER} more characters]"
    answer: dict[str, Any] = {"role": "tool", "tool_call_id": call.get("id"), "content": content}
    if error:
        answer["is_error"] = True
    return answer


def _pyspur_message(message: dict[str, Any]) -> dict[str, Any]:
    # The node's `tool_calls` output keeps PySpur's shape: the chat format's keys only.
    return {k: v for k, v in message.items() if k not in ("is_error", "thinking_blocks")}
