"""anthropic/ models through the official `anthropic` SDK (its Messages API), not Anthropic's
OpenAI-compatible endpoint, which ignores structured output and has no thinking budget.

PySpur's OpenAI-shaped messages are mapped onto the Messages API: system messages become `system`,
the rest stay in order. Structured output is a forced tool whose `input_schema` is the node's strict
schema (the reply is that tool's input); with thinking on, Anthropic refuses a forced tool, so the
schema goes into the system prompt and the reply's text is parsed, as for JSON mode elsewhere.

The SDK takes seconds to import, so it is imported in a thread on first use, not at worker start.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from dataclasses import dataclass
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
) -> dict[str, Any]:
    """The Messages API request of the node's call (`schema` None: a model without JSON output)."""
    info = config.get("llm_info") or {}
    max_tokens = int(info.get("max_tokens") or _DEFAULT_MAX_TOKENS)
    system = [str(m.get("content") or "") for m in messages if m.get("role") == "system"]
    rest = [_message(m) for m in messages if m.get("role") != "system"]
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": rest}
    if thinking:
        # Anthropic requires temperature 1 (unset) with thinking, and no forced tool.
        body["thinking"] = {"type": "enabled", "budget_tokens": thinking_budget(config, max_tokens)}
        if schema is not None:
            probe = [{"role": "system", "content": "\n".join(system)}]
            msgs.schema_in_prompt(probe, msgs.strict_schema(schema))
            system = [probe[0]["content"]]
    else:
        if info.get("temperature") is not None:
            body["temperature"] = info["temperature"]
        if schema is not None:
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
    response = await target.messages.create(**body)
    content: str | None = None
    texts: list[str] = []
    for block in response.content:
        kind = getattr(block, "type", None)
        if kind == "tool_use" and getattr(block, "name", None) == TOOL:
            content = json.dumps(block.input)
        elif kind == "text":
            texts.append(block.text)
    if content is None and texts:
        content = "".join(texts)
    usage = response.usage
    return Reply(
        content=content,
        prompt_tokens=int(getattr(usage, "input_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "output_tokens", 0) or 0),
        finish_reason=response.stop_reason,
        model=response.model,
    )
