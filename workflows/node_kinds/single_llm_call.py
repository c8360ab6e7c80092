"""SingleLLMCallNode: one LLM call as the activity `call_llm`, in PySpur 0.1.18's config shape.

The workflow hands the activity the node's config and input, never a key: the activity renders the
templates, reads the tenant's keys and calls the provider. Its result (output and token usage) is
recorded in the run's history, so a finished call is never made again, whatever happens to the
worker afterwards. Retries are Temporal's (bounded by the node's `max_attempts` and
`max_total_seconds`), so a 429's Retry-After and a 5xx's backoff are visible and durable.
"""

from __future__ import annotations

import functools
import json
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, GetCoreSchemaHandler, TypeAdapter, field_validator
from pydantic_core import core_schema
from temporalio import workflow
from temporalio.common import RetryPolicy

from errors import InvalidDefinition
from workflows.contracts import LlmActivitiesContract, LlmCallInput, LlmCallResult, TaskRecord
from workflows.definition import WorkflowNode
from workflows.node_configs import NodeConfig
from workflows.node_kinds.base import NodeHandler, NodeKind, NodeOutput, RunScope, object_schema

if TYPE_CHECKING:
    from workflows.graph import RunState

# Provider prefixes of PySpur's model ids; the activity routes each (llm_providers).
PROVIDERS = ("openai", "azure", "anthropic", "gemini", "deepseek", "ollama")
# Error types the activity raises that retrying cannot fix (auth, bad request, unknown model, ...).
_DEFAULT_JSON_SCHEMA = '{"type": "object", "properties": {"output": {"type": "string"} } }'
NON_RETRYABLE = [
    "auth",
    "bad_request",
    "not_found",
    "missing_key",
    "template",
    "parsing_error",
    "invalid_json_format",
]


# PySpur 0.1.18's model ids, in its order (the editor's model picker lists them).
class LLMModels(StrEnum):
    O1_PRO = "openai/o1-pro"
    O3_MINI = "openai/o3-mini"
    O3_MINI_2025_01_31 = "openai/o3-mini-2025-01-31"
    GPT_4O_MINI = "openai/gpt-4o-mini"
    GPT_4O = "openai/gpt-4o"
    O1_PREVIEW = "openai/o1-preview"
    O1_MINI = "openai/o1-mini"
    O1 = "openai/o1"
    O1_2024_12_17 = "openai/o1-2024-12-17"
    O1_MINI_2024_09_12 = "openai/o1-mini-2024-09-12"
    O1_PREVIEW_2024_09_12 = "openai/o1-preview-2024-09-12"
    CHATGPT_4O_LATEST = "openai/chatgpt-4o-latest"
    AZURE_GPT_4 = "azure/gpt-4"
    AZURE_GPT_35_TURBO = "azure/gpt-35-turbo"
    CLAUDE_3_5_SONNET_LATEST = "anthropic/claude-3-5-sonnet-latest"
    CLAUDE_3_5_HAIKU_LATEST = "anthropic/claude-3-5-haiku-latest"
    CLAUDE_3_OPUS_LATEST = "anthropic/claude-3-opus-latest"
    CLAUDE_3_7_SONNET_LATEST = "anthropic/claude-3-7-sonnet-latest"
    GEMINI_2_0_FLASH_EXP = "gemini/gemini-2.0-flash-exp"
    GEMINI_2_0_FLASH = "gemini/gemini-2.0-flash"
    GEMINI_1_5_PRO = "gemini/gemini-1.5-pro"
    GEMINI_1_5_FLASH = "gemini/gemini-1.5-flash"
    GEMINI_1_5_PRO_LATEST = "gemini/gemini-1.5-pro-latest"
    GEMINI_1_5_FLASH_LATEST = "gemini/gemini-1.5-flash-latest"
    DEEPSEEK_CHAT = "deepseek/deepseek-chat"
    DEEPSEEK_REASONER = "deepseek/deepseek-reasoner"
    OLLAMA_MISTRAL_SMALL = "ollama/mistral-small:24b"
    OLLAMA_DEEPSEEK_R1 = "ollama/deepseek-r1"
    OLLAMA_PHI4 = "ollama/phi4"
    OLLAMA_LLAMA3_3_70B = "ollama/llama3.3:70b"
    OLLAMA_LLAMA3_2_3B = "ollama/llama3.2:3b"
    OLLAMA_LLAMA3_2_1B = "ollama/llama3.2:1b"
    OLLAMA_LLAMA3_1_8B = "ollama/llama3.1:8b"
    OLLAMA_LLAMA3_1_70B = "ollama/llama3.1:70b"
    OLLAMA_LLAMA3_8B = "ollama/llama3:8b"
    OLLAMA_LLAMA3_70B = "ollama/llama3:70b"
    OLLAMA_GEMMA_3_1B = "ollama/gemma3:1b"
    OLLAMA_GEMMA_3_4B = "ollama/gemma3:4b"
    OLLAMA_GEMMA_3_12B = "ollama/gemma3:12b"
    OLLAMA_GEMMA_3_27B = "ollama/gemma3:27b"
    OLLAMA_GEMMA_2 = "ollama/gemma2"
    OLLAMA_GEMMA_2_2B = "ollama/gemma2:2b"
    OLLAMA_MISTRAL = "ollama/mistral"
    OLLAMA_CODELLAMA = "ollama/codellama"
    OLLAMA_MIXTRAL = "ollama/mixtral-8x7b-instruct-v0.1"


class ModelId(str):
    """A model id `<provider>/<model>`. The catalogue shows PySpur's enum (the picker's list); any
    model of a known provider is accepted, so `openai/<name>` reaches any OpenAI-compatible server
    at the tenant's OPENAI_API_BASE (vLLM, LM Studio, a gateway)."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_check_model_id, core_schema.str_schema())


def _check_model_id(value: str) -> str:
    provider, sep, name = value.partition("/")
    if not sep or provider not in PROVIDERS or not name:
        raise ValueError(f"model must be '<provider>/<model>' with provider one of {', '.join(PROVIDERS)}")
    return value


class ModelInfo(BaseModel):
    model: ModelId = Field(ModelId(LLMModels.GPT_4O.value), description="The LLM model to use for completion")
    max_tokens: int | None = Field(
        ..., ge=1, le=65536, description="Maximum number of tokens the model can generate"
    )
    temperature: float | None = Field(
        default=0.7, ge=0.0, le=1.0, description="Temperature for randomness, between 0.0 and 1.0"
    )
    top_p: float | None = Field(
        default=0.9, ge=0.0, le=1.0, description="Top-p sampling value, between 0.0 and 1.0"
    )


# PySpur's SingleLLMCallNodeConfig, plus the retry bounds of the durable call. (No docstring: the
# catalogue shows PySpur's schema, which has no description.)
class SingleLLMCallNodeConfig(NodeConfig):
    output_schema: dict[str, str] = Field(
        default={"output": "string"},
        title="Output schema",
        description="The schema for the output of the node",
    )
    output_json_schema: str = Field(
        default=_DEFAULT_JSON_SCHEMA,
        title="Output JSON schema",
        description="The JSON schema for the output of the node",
    )
    has_fixed_output: bool = Field(
        default=False, description="Whether the node has a fixed output schema defined in config"
    )
    llm_info: ModelInfo = Field(
        ModelInfo(model=ModelId(LLMModels.GPT_4O.value), max_tokens=16384, temperature=0.7),
        description="The default LLM model to use",
    )
    system_message: str = Field("You are a helpful assistant.", description="The system message for the LLM")
    user_message: str = Field("", description="The user message for the LLM, serialized from input_schema")
    few_shot_examples: list[dict[str, str]] | None = None
    url_variables: dict[str, str] | None = Field(
        None,
        description="Optional mapping of URL types (image, video, pdf) to input schema variables for Gemini models",
    )
    enable_thinking: bool = Field(False, description="Whether to enable thinking mode for supported models")
    thinking_budget_tokens: int | None = Field(
        None, description="Budget tokens for thinking mode when enabled"
    )
    enable_message_history: bool = Field(
        False, description="Whether to include message history from input in the LLM request"
    )
    message_history_variable: str | None = Field(
        None, description="Input variable containing message history (e.g., 'message_history')"
    )
    # Ours: bounds of the durable call (5xx and timeouts retry with backoff; a 429 after its Retry-After).
    max_attempts: int = Field(3, ge=1, le=20, description="Attempts of the call, the first included")
    max_total_seconds: float = Field(
        300.0, gt=0, le=3600, description="Time for all attempts of the call together, waits included"
    )
    timeout_seconds: float = Field(120.0, gt=0, le=3600, description="Time for one attempt")

    @field_validator("output_json_schema", mode="before")
    @classmethod
    def _null_schema_is_default(cls, value: Any) -> Any:
        # The editor sends null for fields a new node has not set: it means the default.
        return _DEFAULT_JSON_SCHEMA if value is None else value

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """PySpur's schema: `llm_info.model` is its `LLMModels` enum (the editor's picker), although
        any `<provider>/<model>` validates."""
        schema = super().model_json_schema(*args, **kwargs)
        defs = schema.setdefault("$defs", {})
        model = defs["ModelInfo"]["properties"]["model"]
        defs["ModelInfo"]["properties"]["model"] = {
            "$ref": "#/$defs/LLMModels",
            "default": model["default"],
            "description": model["description"],
        }
        defs["LLMModels"] = TypeAdapter(LLMModels).json_schema()
        schema["$defs"] = dict(sorted(defs.items()))
        return schema


@functools.cache
def model_constraints() -> dict[str, Any]:
    """PySpur's per-model limits (the picker reads them), from the data file; read when first asked."""
    data: dict[str, Any] = json.loads((Path(__file__).with_name("llm_models.json")).read_text())
    return data


def check_llm_config(node: WorkflowNode, config: SingleLLMCallNodeConfig) -> None:
    """Definition-time checks beyond the model: the schema is a JSON object schema, few-shot examples
    have both sides, templates parse.

    Raises:
        InvalidDefinition: naming the node and the fault.
    """
    if config.output_json_schema and config.output_json_schema.strip():
        try:
            schema = json.loads(config.output_json_schema)
        except json.JSONDecodeError as err:
            raise InvalidDefinition(f"Node '{node.id}': output_json_schema is not JSON ({err.msg})") from None
        if not isinstance(schema, dict) or not isinstance(schema.get("properties", {}), dict):
            raise InvalidDefinition(f"Node '{node.id}': output_json_schema must be a JSON object schema")
    check_thinking_and_urls(node, config)
    for i, example in enumerate(config.few_shot_examples or []):
        if "input" not in example or "output" not in example:
            raise InvalidDefinition(f"Node '{node.id}': few_shot_examples[{i}] needs 'input' and 'output'")
    # Imported here: only definition checks and the activity need Jinja2, not every workflow import.
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment()
    for field in ("system_message", "user_message"):
        try:
            env.parse(getattr(config, field))
        except TemplateSyntaxError as err:
            raise InvalidDefinition(
                f"Node '{node.id}': {field} is not a valid template: {err.message}"
            ) from None


def check_thinking_and_urls(node: WorkflowNode, config: SingleLLMCallNodeConfig) -> None:
    """Thinking mode only where the provider has it (Anthropic's `thinking`, the models PySpur marks
    `supports_thinking`, or any anthropic/ model outside PySpur's list); `url_variables` only under
    the names PySpur reads.

    Raises:
        InvalidDefinition: naming the node, the setting and why.
    """
    model = str(config.llm_info.model)
    if config.enable_thinking:
        known = model_constraints().get(model)
        supported = known.get("supports_thinking", False) if known else model.startswith("anthropic/")
        if not supported:
            raise InvalidDefinition(
                f"Node '{node.id}': enable_thinking is set but {model} has no thinking mode "
                "(it is supported for Anthropic models such as anthropic/claude-3-7-sonnet-latest)"
            )
        budget = config.thinking_budget_tokens
        max_tokens = config.llm_info.max_tokens
        if budget is not None and max_tokens is not None and not 1024 <= budget < max_tokens:
            raise InvalidDefinition(
                f"Node '{node.id}': thinking_budget_tokens must be at least 1024 and below "
                f"llm_info.max_tokens ({max_tokens}), got {budget}"
            )
    for kind, variable in (config.url_variables or {}).items():
        if kind != "file":
            raise InvalidDefinition(
                f"Node '{node.id}': url_variables.{kind} is not supported (use 'file': the input "
                "variable holding an http(s) or data: URL, sent beside the user message)"
            )
        if not variable or "." not in variable:
            raise InvalidDefinition(
                f"Node '{node.id}': url_variables.{kind} must name an input variable as "
                f"'Title.field', got {variable!r}"
            )


def check_template_titles(node: WorkflowNode, config: SingleLLMCallNodeConfig, titles: set[str]) -> None:
    """A template may only name the titles of the node's predecessors (its input's keys).

    Raises:
        InvalidDefinition: naming the template and the unknown name.
    """
    from jinja2 import meta
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment()
    for field in ("system_message", "user_message"):
        names = meta.find_undeclared_variables(env.parse(getattr(config, field))) - set(env.globals)
        unknown = sorted(names - titles)
        if unknown:
            known = ", ".join(sorted(titles)) or "none: the node has no incoming link"
            raise InvalidDefinition(
                f"Node '{node.id}': {field} names '{unknown[0]}', which is not the title of a node "
                f"linked into it (predecessors: {known})"
            )


async def llm_call(
    run: RunScope,
    node_id: str,
    summary: str,
    config: dict[str, Any],
    inputs: dict[str, Any],
    tasks: list[TaskRecord] | None = None,
    tools: list[dict[str, Any]] | None = None,
    messages: list[dict[str, Any]] | None = None,
) -> LlmCallResult:
    """One durable LLM call of a node (its retry bounds from the node's config); `tasks`: the run's
    unflushed progress, written by the activity beside the call; `tools` and `messages`: an agent's
    turn (its function schemas, the conversation after the prompt)."""
    parsed = SingleLLMCallNodeConfig.model_validate(config)
    arg = LlmCallInput(
        tenant_id=run.inp.tenant_id,
        node_id=node_id,
        config=config,
        inputs=inputs,
        run_id=run.inp.run_id,
        attempt=run.inp.attempt,
        tasks=tasks or [],
        tools=tools,
        messages=messages or [],
    )
    return await workflow.execute_activity_method(
        LlmActivitiesContract.call_llm,
        arg,
        start_to_close_timeout=timedelta(seconds=parsed.timeout_seconds),
        schedule_to_close_timeout=timedelta(seconds=parsed.max_total_seconds),
        heartbeat_timeout=timedelta(seconds=run.inp.policy.llm_heartbeat_timeout_seconds),
        task_queue=run.inp.policy.llm_task_queue,
        retry_policy=RetryPolicy(
            initial_interval=timedelta(seconds=1),
            maximum_interval=timedelta(seconds=30),
            maximum_attempts=parsed.max_attempts,
            non_retryable_error_types=NON_RETRYABLE,
        ),
        summary=summary,
    )


def record_usage(state: RunState, node_id: str, usages: list[dict[str, Any]]) -> None:
    """Put the node's token usage (summed over its calls) on its task record."""
    record = state.records.get(node_id)
    if record is None or not usages:
        return
    costs = [u.get("cost_usd") for u in usages]
    record.usage = {
        "model": usages[0].get("model"),
        "prompt_tokens": sum(int(u.get("prompt_tokens") or 0) for u in usages),
        "completion_tokens": sum(int(u.get("completion_tokens") or 0) for u in usages),
        "cost_usd": round(sum(c for c in costs if c is not None), 8) if None not in costs else None,
    }
    if len(usages) > 1:
        record.usage["calls"] = len(usages)


class SingleLLMCallHandler(NodeHandler[SingleLLMCallNodeConfig]):
    node_type = "SingleLLMCallNode"
    display_name = "Single LLM Call"
    group = "AI"
    kind = NodeKind.ACTIVITY
    config_model = SingleLLMCallNodeConfig
    acronym = "SLCN"
    color = "#007BFF"
    input_schema = object_schema("SingleLLMCallNodeInput", open_=True)
    output_schema = object_schema("SingleLLMCallNodeOutput")
    flushes_progress = True

    def check(self, node: WorkflowNode, config: SingleLLMCallNodeConfig) -> None:
        check_llm_config(node, config)

    def check_in_graph(
        self, node: WorkflowNode, config: SingleLLMCallNodeConfig, predecessor_titles: set[str]
    ) -> None:
        check_template_titles(node, config, predecessor_titles)

    def catalogue_extra(self) -> dict[str, Any]:
        return {"model_constraints": model_constraints()}

    async def run(self, run: RunScope, state: RunState, node_id: str, inputs: dict[str, Any]) -> NodeOutput:
        node = state.plan.by_id[node_id]
        result = await llm_call(run, node_id, node.title, dict(node.config), inputs, run.unflushed())
        record_usage(state, node_id, [result.usage])
        return result.output
