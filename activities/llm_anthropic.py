"""anthropic/ models through the official `anthropic` SDK (its Messages API), not Anthropic's
OpenAI-compatible endpoint, which ignores structured output and has no thinking budget.

PySpur's OpenAI-shaped messages are mapped onto the Messages API: system messages become `system`,
the rest stay in order. Structured output is a forced tool whose `input_schema` is the node's strict
schema (the reply is that tool's input); with thinking on, Anthropic refuses a forced tool, so the
schema goes into the system prompt and the reply's text is parsed, as for JSON mode elsewhere.

An agent's turn offers its tools (`{name, description, input_schema}`) and lets the model choose (a
forced output tool would leave it no choice), so its final answer is parsed from text with the
schema in the system prompt. The run keeps the conversation in one shape, the chat format's
(`tool_calls` on the assistant message, `role: tool` answers, plus `is_error` and Anthropic's
`thinking_blocks`, which the chat route drops); it is converted here, at the boundary: an assistant
turn becomes its thinking, text and `tool_use` blocks again, and consecutive tool answers one user
message of `tool_result` blocks.

The SDK takes seconds to import, so it is imported in a thread on first use, not at worker start.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from activities import llm_messages as msgs

if TYPE_CHECKING:
    import anthropic

DEFAULT_BASE = "https://api.anthropic.com"
TOOL = "output"
# PySpur's default when the node sets none; Anthropic requires max_tokens.
_DEFAULT_MAX_TOKENS = 1024
_MIN_THINKING_BUDGET = 1024


@dataclass(frozen=True)
class Reply:
    content: str | None
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    model: str | None
    # An agent's turn: the tools it asked for (chat format, in the model's order) and its thinking
    # blocks, which Anthropic wants back unchanged with the tools' answers.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    thinking_blocks: list[dict[str, Any]] = field(default_factory=list)
    text: str | None = None

    def assistant_message(self) -> dict[str, Any]:
        """The turn as the run keeps it (the chat format's assistant message)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text, "tool_calls": self.tool_calls}
        if self.thinking_blocks:
            message["thinking_blocks"] = self.thinking_blocks
        return message


_module: Any = None


async def sdk() -> Any:
    """The `anthropic` module, imported once in a thread (the event loop keeps heartbeating)."""
    global _module
    if _module is None:
        _module = await asyncio.to_thread(importlib.import_module, "anthropic")
    return _module


async def client(
    key: str, base: str | None, seconds: float, http: httpx.AsyncClient
) -> anthropic.AsyncAnthropic:
    """A client of the tenant's key over the worker's connection pool (shared with the openai SDK)."""
    module = await sdk()
    made: anthropic.AsyncAnthropic = module.AsyncAnthropic(
        api_key=key, base_url=base or DEFAULT_BASE, max_retries=0, timeout=seconds, http_client=http
    )
    return made


def thinking_budget(config: dict[str, Any], max_tokens: int) -> int:
    """The budget of thinking tokens: the node's, else the model's default; Anthropic wants at least
    1024 and less than max_tokens."""
    budget = int(config.get("thinking_budget_tokens") or _MIN_THINKING_BUDGET)
    return max(_MIN_THINKING_BUDGET, min(budget, max_tokens - 1))


def request(
    model: str,
    config: dict[str, Any],
    messages: list[dict[str, Any]],
    schema: dict[str, Any] | None,
    thinking: bool,
    tools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The Messages API request of the node's call (`schema` None: a model without JSON output;
    `tools`: an agent's turn, its function schemas in the chat format)."""
    info = config.get("llm_info") or {}
    max_tokens = int(info.get("max_tokens") or _DEFAULT_MAX_TOKENS)
    system = [str(m.get("content") or "") for m in messages if m.get("role") == "system"]
    rest = conversation([m for m in messages if m.get("role") != "system"])
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": rest}
    if thinking:
        # Anthropic requires temperature 1 (unset) with thinking, and no forced tool.
        body["thinking"] = {"type": "enabled", "budget_tokens": thinking_budget(config, max_tokens)}
    elif info.get("temperature") is not None:
        body["temperature"] = info["temperature"]
    if tools is not None:
        body["tools"] = [_tool(t) for t in tools]
    if schema is not None and (thinking or tools is not None):
        probe = [{"role": "system", "content": "\n".join(system)}]
        msgs.schema_in_prompt(probe, msgs.strict_schema(schema))
        system = [probe[0]["content"]]
    elif schema is not None:
        body["tools"] = [
            {
                "name": TOOL,
                "description": "Respond with the output, as this tool's input.",
                "input_schema": msgs.strict_schema(schema),
            }
        ]
        body["tool_choice"] = {"type": "tool", "name": TOOL}
    text = "\n".join(s for s in system if s)
    if text:
        body["system"] = text
    return body


def _tool(schema: dict[str, Any]) -> dict[str, Any]:
    function = schema.get("function") or {}
    return {
        "name": function.get("name"),
        "description": function.get("description") or "",
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }


def conversation(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's conversation (chat format) as Messages API messages: an assistant turn with tool
    calls as its thinking, text and `tool_use` blocks; consecutive tool answers as one user message
    of `tool_result` blocks, in the order the model asked."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.get("role") == "tool":
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
                "content": str(message.get("content") or ""),
            }
            if message.get("is_error"):
                result["is_error"] = True
            if out and out[-1].get("answers"):
                out[-1]["content"].append(result)
            else:
                out.append({"role": "user", "content": [result], "answers": True})
        elif message.get("role") == "assistant" and message.get("tool_calls"):
            blocks = [dict(b) for b in message.get("thinking_blocks") or []]
            if message.get("content"):
                blocks.append({"type": "text", "text": message["content"]})
            blocks += [_tool_use(c) for c in message["tool_calls"]]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append(_message(message))
    for message in out:
        message.pop("answers", None)
    return out


def _tool_use(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except json.JSONDecodeError:  # only Anthropic's own calls come here, and their input is an object
        arguments = {}
    return {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments}


def _message(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        content = [_part(p) for p in content]
    return {"role": message.get("role") or "user", "content": content if content is not None else ""}


def _part(part: Any) -> Any:
    """OpenAI's `image_url` content part as Anthropic's URL image source (url_variables)."""
    if isinstance(part, dict) and part.get("type") == "image_url":
        url = (part.get("image_url") or {}).get("url", "")
        return {"type": "image", "source": {"type": "url", "url": url}}
    return part


async def complete(target: anthropic.AsyncAnthropic, body: dict[str, Any]) -> Reply:
    return reply_of(await target.messages.create(**body), body)


def reply_of(response: Any, body: dict[str, Any]) -> Reply:
    """The SDK's Message as a Reply: the forced output tool's input is the content; any other
    `tool_use` block is an agent's tool call (chat format, arguments as JSON text)."""
    forced = (body.get("tool_choice") or {}).get("name")
    content: str | None = None
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for block in response.content:
        kind = getattr(block, "type", None)
        if kind == "tool_use" and forced is not None and block.name == forced:
            content = json.dumps(block.input)
        elif kind == "tool_use":
            arguments = json.dumps(block.input)
            calls.append(
                {"id": block.id, "type": "function", "function": {"name": block.name, "arguments": arguments}}
            )
        elif kind == "text":
            texts.append(block.text)
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(block.model_dump(mode="json", exclude_none=True))
    text = "".join(texts) if texts else None
    usage = response.usage
    return Reply(
        content=content if content is not None else text,
        prompt_tokens=int(getattr(usage, "input_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "output_tokens", 0) or 0),
        finish_reason=response.stop_reason,
        model=response.model,
        tool_calls=calls,
        thinking_blocks=thinking,
        text=text,
    )
