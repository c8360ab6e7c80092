"""The LLM call activity (`contracts.LlmActivitiesContract`): keys read at call time, one request to
the provider while heartbeating (so a run's cancel closes the connection), errors typed for
Temporal's retries, usage and cost returned beside the output."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import llm_anthropic
from activities import llm_messages as msgs
from activities import llm_providers as providers
from core import llm_egress, provider_keys
from db import repo
from errors import DomainError
from settings import Settings
from telemetry.llm import LlmCall, llm_call
from workflows.contracts import LlmActivitiesContract, LlmCallInput, LlmCallResult
from workflows.node_kinds.single_llm_call import SingleLLMCallNodeConfig, model_constraints


class LlmActivities(LlmActivitiesContract):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings
        self._http: httpx.AsyncClient | None = None
        self._clients = providers.Clients()

    def _client(self) -> httpx.AsyncClient:
        # One connection pool for every call of this worker (the SDK's clients are per call: keys differ).
        if self._http is None:
            self._http = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=2000, max_keepalive_connections=200)
            )
        return self._http

    async def call_llm(self, arg: LlmCallInput) -> LlmCallResult:
        """Raises:
        ApplicationError: typed (`auth`, `bad_request`, `not_found`, `missing_key`, `template`,
            `parsing_error`, `invalid_json_format` are not retried; `rate_limit`, `provider_error`,
            `timeout`, `connection` are).
        """
        progress = asyncio.create_task(self._record_progress(arg)) if arg.tasks and arg.run_id else None
        work = asyncio.create_task(self._call(arg))
        info = activity.info()
        # Heartbeats cover the whole call, waits for a database connection included, and are how a
        # cancel gets here. The worker sends at most one per throttle interval however often they are
        # made, so half of it is enough (a thousand waiting calls each wake up twice a second at most).
        half = self._settings.worker_heartbeat_throttle_seconds / 2
        beat = min(info.heartbeat_timeout.total_seconds() / 4, half) if info.heartbeat_timeout else half
        beats = asyncio.create_task(_heartbeats(beat))
        try:
            return await work
        finally:
            beats.cancel()
            if not work.done():
                work.cancel()  # closes the provider connection: it sees the run's cancel
                await asyncio.gather(work, return_exceptions=True)
            if progress is not None:
                await progress

    async def _record_progress(self, arg: LlmCallInput) -> None:
        # Best effort, overlapping the call: a failed write must not fail (and so repeat) a paid call;
        # the run's terminal write carries the same rows.
        assert arg.run_id is not None
        try:
            async with self._sessions() as session, session.begin():
                await repo.record_progress(session, uuid.UUID(arg.run_id), arg.tasks, arg.attempt)
        except Exception as err:
            activity.logger.warning("progress of run %s not written: %s", arg.run_id, type(err).__name__)

    async def _call(self, arg: LlmCallInput) -> LlmCallResult:
        try:
            config = SingleLLMCallNodeConfig.model_validate(arg.config)
            raw = config.model_dump()
            messages = msgs.build_messages(raw, arg.inputs)
            msgs.attach_urls(messages, raw, arg.inputs)
            messages += [dict(m) for m in arg.messages]
            schema = msgs.output_schema(raw)
            if arg.tools is not None:
                schema = msgs.without_tool_calls(schema)
        except msgs.LlmNodeError as err:
            raise ApplicationError(
                f"Node '{arg.node_id}': {err.message}", type=err.kind, non_retryable=True
            ) from None
        except ValueError as err:  # the config does not fit (a definition saved before a check existed)
            raise ApplicationError(
                f"Node '{arg.node_id}': {err}", type="bad_request", non_retryable=True
            ) from None
        model_id = str(config.llm_info.model)
        provider = model_id.partition("/")[0]
        values = await self._values(arg.tenant_id, providers.NAMES.get(provider, []))
        await self._check_base(arg.node_id, provider, values)
        if provider == "anthropic":
            return await self._call_anthropic(
                arg.node_id, config, model_id, values, messages, schema, arg.tools
            )
        messages = [msgs.chat_message(m) for m in messages]
        try:
            target = providers.route(model_id, values, self._client(), config.timeout_seconds, self._clients)
        except providers.MissingKey as err:
            raise ApplicationError(
                f"Node '{arg.node_id}': {err}", type="missing_key", non_retryable=True
            ) from None
        request = self._request(config, target, messages, schema)
        if arg.tools:
            request["tools"] = arg.tools
        capture = self._settings.tracing_capture_content
        with llm_call(provider=target.provider, model=model_id, capture_content=capture) as call:
            call.prompt(messages)
            try:
                response = await target.client.chat.completions.create(**request)
            except Exception as err:
                raise providers.classify(
                    err, target.provider, target.secrets, config.max_total_seconds
                ) from None
            result = (_tool_turn(model_id, response) if arg.tools else None) or self._result(
                arg.node_id, model_id, response, schema
            )
            _observe(call, response, result)
        return result

    async def _check_base(self, node_id: str, provider: str, values: dict[str, str]) -> None:
        """The base URL is checked again here, on what its host resolves to now."""
        name = providers.BASE_NAME.get(provider, "")
        url = values.get(name)
        if not url:
            return
        try:
            await llm_egress.check(name, url, llm_egress.policy(self._settings))
        except llm_egress.Refused as err:
            raise ApplicationError(
                f"Node '{node_id}': {err}", type="egress_refused", non_retryable=True
            ) from None

    async def _call_anthropic(
        self,
        node_id: str,
        config: SingleLLMCallNodeConfig,
        model_id: str,
        values: dict[str, str],
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        tools: list[dict[str, Any]] | None,
    ) -> LlmCallResult:
        try:
            key = providers.key_of("anthropic", values)
        except providers.MissingKey as err:
            raise ApplicationError(
                f"Node '{node_id}': {err}", type="missing_key", non_retryable=True
            ) from None
        secrets = providers.secrets(values)
        constraints = model_constraints().get(model_id, {})
        json_output = constraints.get("supports_JSON_output", True)
        # As PySpur: thinking only where the model has it (a definition saved before the save-time
        # check may still ask for it elsewhere); a model outside PySpur's table is taken at its word.
        thinking = config.enable_thinking and bool(constraints.get("supports_thinking", not constraints))
        body = llm_anthropic.request(
            model_id.partition("/")[2],
            config.model_dump(),
            messages,
            schema if json_output else None,
            thinking,
            tools,
        )
        spec = ("anthropic", values.get("ANTHROPIC_BASE_URL"), key, None, config.timeout_seconds)
        client = self._clients.get(spec)
        if client is None:
            client = await llm_anthropic.client(
                key, values.get("ANTHROPIC_BASE_URL"), config.timeout_seconds, self._client()
            )
            self._clients.put(spec, client)
        capture = self._settings.tracing_capture_content
        with llm_call(provider="anthropic", model=model_id, capture_content=capture) as call:
            call.prompt(messages)
            try:
                reply = await llm_anthropic.complete(client, body)
            except Exception as err:
                raise providers.classify(err, "anthropic", secrets, config.max_total_seconds) from None
            if tools is not None:
                result = _anthropic_turn(node_id, model_id, reply, body["max_tokens"]) or self._parsed(
                    node_id, model_id, reply.text, schema, reply.prompt_tokens, reply.completion_tokens
                )
            else:
                result = self._parsed(
                    node_id, model_id, reply.content, schema, reply.prompt_tokens, reply.completion_tokens
                )
            call.finished(
                input_tokens=reply.prompt_tokens,
                output_tokens=reply.completion_tokens,
                finish_reason=reply.finish_reason,
                response_model=reply.model,
                cost_usd=result.usage.get("cost_usd"),
            )
            call.completion(result.output)
        return result

    async def _values(self, tenant_id: str, names: list[str]) -> dict[str, str]:
        try:
            async with self._sessions() as session:
                return await provider_keys.resolve(
                    session, provider_keys.cipher(self._settings), self._settings, uuid.UUID(tenant_id), names
                )
        except DomainError as err:
            raise ApplicationError(err.detail, type="missing_key", non_retryable=True) from None

    @staticmethod
    def _request(
        config: SingleLLMCallNodeConfig,
        target: providers.Route,
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
    ) -> dict[str, Any]:
        """PySpur's parameters: max_tokens and temperature unless the model refuses them; top_p never;
        the schema as strict `json_schema`, or JSON mode with the schema in the prompt."""
        constraints = model_constraints().get(str(config.llm_info.model), {})
        request: dict[str, Any] = {"model": target.model, "messages": messages}
        if constraints.get("supports_max_tokens", True) and config.llm_info.max_tokens is not None:
            request["max_tokens"] = config.llm_info.max_tokens
        if (
            constraints.get("supports_temperature", True)
            and config.llm_info.temperature is not None
            and config.llm_info.model != "deepseek/deepseek-reasoner"
        ):
            request["temperature"] = config.llm_info.temperature
        if constraints.get("supports_JSON_output", True):
            strict = msgs.strict_schema(schema)
            if target.provider in providers.STRICT_SCHEMA:
                request["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"schema": strict, "strict": True, "name": "output"},
                }
            else:
                request["response_format"] = {"type": "json_object"}
                msgs.schema_in_prompt(messages, strict)
        return request

    @staticmethod
    def _result(node_id: str, model_id: str, response: Any, schema: dict[str, Any]) -> LlmCallResult:
        choices = getattr(response, "choices", None) or []
        content = choices[0].message.content if choices else None
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        return LlmActivities._parsed(node_id, model_id, content, schema, prompt, completion)

    @staticmethod
    def _parsed(
        node_id: str, model_id: str, content: str | None, schema: dict[str, Any], prompt: int, completion: int
    ) -> LlmCallResult:
        constraints = model_constraints().get(model_id, {})
        try:
            if constraints.get("supports_JSON_output", True):
                output = msgs.parse_reply(content, schema)
            else:
                separator = (
                    constraints.get("reasoning_separator") if constraints.get("supports_reasoning") else None
                )
                output = msgs.plain_reply(content or "", separator)
        except msgs.LlmNodeError as err:
            raise ApplicationError(
                f"Node '{node_id}': {err.message}", type=err.kind, non_retryable=True
            ) from None
        return LlmCallResult(
            output=output,
            usage={
                "model": model_id,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "cost_usd": providers.cost(model_id, prompt, completion),
            },
        )


async def _heartbeats(interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        activity.heartbeat()


def _usage(model_id: str, response: Any) -> dict[str, Any]:
    usage = getattr(response, "usage", None)
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    return {
        "model": model_id,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cost_usd": providers.cost(model_id, prompt, completion),
    }


def _tool_turn(model_id: str, response: Any) -> LlmCallResult | None:
    """An agent's turn that asked for tools: the assistant message in the chat wire format (the
    arguments left as the model wrote them: the workflow checks them); None for a final answer."""
    choices = getattr(response, "choices", None) or []
    message = choices[0].message if choices else None
    calls = getattr(message, "tool_calls", None) or []
    if not calls:
        return None
    return LlmCallResult(
        output={},
        usage=_usage(model_id, response),
        message={
            "role": "assistant",
            "content": getattr(message, "content", None),
            "tool_calls": [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.function.name, "arguments": c.function.arguments},
                }
                for c in calls
            ],
        },
    )


def _anthropic_turn(
    node_id: str, model_id: str, reply: llm_anthropic.Reply, max_tokens: int
) -> LlmCallResult | None:
    """An agent's turn on the Messages API by its stop_reason: `tool_use`, the tools it asked for;
    `max_tokens`, an error (a cut `tool_use` block or answer is not something to act on); else
    (`end_turn`) None: the final answer, parsed from the text.

    Raises:
        ApplicationError("max_tokens"): the turn was cut at max_tokens (not retried: it would be again).
    """
    if reply.finish_reason == "max_tokens":
        raise ApplicationError(
            f"Node '{node_id}': the model's turn was cut at max_tokens ({max_tokens}) before it "
            "finished; raise llm_info.max_tokens",
            type="max_tokens",
            non_retryable=True,
        )
    if not reply.tool_calls:
        return None
    usage = {
        "model": model_id,
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "cost_usd": providers.cost(model_id, reply.prompt_tokens, reply.completion_tokens),
    }
    return LlmCallResult(output={}, usage=usage, message=reply.assistant_message())


def _observe(call: LlmCall, response: Any, result: LlmCallResult) -> None:
    """The span's GenAI attributes and the LLM metrics from the provider's answer."""
    choices = getattr(response, "choices", None) or []
    call.finished(
        input_tokens=int(result.usage.get("prompt_tokens") or 0),
        output_tokens=int(result.usage.get("completion_tokens") or 0),
        finish_reason=getattr(choices[0], "finish_reason", None) if choices else None,
        response_model=getattr(response, "model", None),
        cost_usd=result.usage.get("cost_usd"),
    )
    call.completion(result.output)
