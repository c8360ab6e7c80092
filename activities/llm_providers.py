"""PySpur's model ids routed to their providers through the official `openai` SDK (OpenAI and any
compatible server, Azure, DeepSeek, Gemini's OpenAI-compatible endpoint, Ollama's /v1; `anthropic/`
goes through the `anthropic` SDK, `llm_anthropic`), and the provider errors of either SDK sorted
into what retrying can fix and what it cannot.

Error messages name the provider and the cause and never carry a key: provider texts are scrubbed
of every secret the call used, and dropped when they still hold a fragment of one.
"""

from __future__ import annotations

import email.utils
import functools
import json
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
from temporalio.exceptions import ApplicationError

# Where each provider prefix goes and which settings it needs (PySpur's env names).
_DEFAULT_BASE = {
    "deepseek": "https://api.deepseek.com",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai/",
    "anthropic": "https://api.anthropic.com/v1/",
}
_KEY_NAME = {
    "openai": "OPENAI_API_KEY",
    "azure": "AZURE_OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
}
NAMES = {
    "openai": ["OPENAI_API_KEY", "OPENAI_API_BASE"],
    "azure": ["AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_VERSION"],
    "anthropic": ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"],
    "gemini": ["GEMINI_API_KEY", "GEMINI_API_BASE"],
    "deepseek": ["DEEPSEEK_API_KEY", "DEEPSEEK_API_BASE"],
    "ollama": ["OLLAMA_BASE_URL"],
}
# A provider's own base URL setting (beyond PySpur's names for anthropic, gemini and deepseek).
BASE_NAME = {
    "openai": "OPENAI_API_BASE",
    "azure": "AZURE_OPENAI_ENDPOINT",
    "anthropic": "ANTHROPIC_BASE_URL",
    "gemini": "GEMINI_API_BASE",
    "deepseek": "DEEPSEEK_API_BASE",
    "ollama": "OLLAMA_BASE_URL",
}
# Providers whose endpoint enforces `response_format: json_schema` (strict); the others get JSON
# mode with the schema in the system message.
STRICT_SCHEMA = {"openai", "azure", "gemini"}
_SECRET_FRAGMENT = 6
_MAX_PROVIDER_TEXT = 300


@dataclass(frozen=True)
class Route:
    provider: str
    model: str  # as the provider expects it (no prefix)
    client: openai.AsyncOpenAI
    secrets: tuple[str, ...]


class MissingKey(Exception):
    pass


class Clients:
    """A worker's SDK clients by everything one is built from (provider, base URL, key, Azure's
    version, timeout), so calls with the same values share one; the least recently used is dropped
    past `size` (the connection pool they use is the worker's, not theirs)."""

    def __init__(self, size: int = 256) -> None:
        self._made: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._size = size

    def get(self, spec: tuple[Any, ...]) -> Any | None:
        client = self._made.get(spec)
        if client is not None:
            self._made.move_to_end(spec)
        return client

    def put(self, spec: tuple[Any, ...], client: Any) -> None:
        self._made[spec] = client
        if len(self._made) > self._size:
            self._made.popitem(last=False)


def route(
    model_id: str,
    values: dict[str, str],
    http: httpx.AsyncClient,
    timeout: float,
    clients: Clients | None = None,
) -> Route:
    """The client of the model's provider, built with the tenant's (or the instance's) values
    (or the one `clients` already holds for them).

    Raises:
        MissingKey: naming the setting that is missing and where to set it.
    """
    provider, _, model = model_id.partition("/")
    key_name = _KEY_NAME.get(provider)
    key = values.get(key_name) if key_name else None
    base = values.get(BASE_NAME.get(provider, "")) or _DEFAULT_BASE.get(provider)
    if provider == "ollama":
        base = (values.get("OLLAMA_BASE_URL") or "http://127.0.0.1:11434").rstrip("/") + "/v1"
        key = "ollama"  # Ollama takes no key; the SDK wants one
    elif provider == "openai" and not key and base:
        key = "none"  # a self-hosted compatible server may need no key
    if key_name and not key:
        raise MissingKey(_missing(key_name, provider))
    assert key is not None
    if provider == "azure":
        for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_VERSION"):
            if not values.get(name):
                raise MissingKey(_missing(name, provider))
    spec = (provider, base, key, values.get("AZURE_OPENAI_API_VERSION"), timeout)
    client: openai.AsyncOpenAI | None = clients.get(spec) if clients is not None else None
    if client is None:
        common: dict[str, Any] = {"api_key": key, "http_client": http, "max_retries": 0, "timeout": timeout}
        if provider == "azure":
            client = openai.AsyncAzureOpenAI(
                azure_endpoint=values["AZURE_OPENAI_ENDPOINT"],
                api_version=values["AZURE_OPENAI_API_VERSION"],
                **common,
            )
        else:
            client = openai.AsyncOpenAI(base_url=base, **common)
        if clients is not None:
            clients.put(spec, client)
    return Route(provider, model, client, secrets(values))


def secrets(values: dict[str, str]) -> tuple[str, ...]:
    return tuple(v for n, v in values.items() if n.endswith("_KEY") and v)


def key_of(provider: str, values: dict[str, str]) -> str:
    """Raises:
    MissingKey: the provider's key is not set.
    """
    name = _KEY_NAME[provider]
    key = values.get(name)
    if not key:
        raise MissingKey(_missing(name, provider))
    return key


def _missing(name: str, provider: str) -> str:
    return (
        f"No {name} is configured for {provider} models: set it for this tenant in the settings dialog "
        f"(POST /env-mgmt/ with name '{name}'), or as {name} in the service's environment"
    )


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """The text without any secret; empty when a fragment of one is still in it (a provider that
    echoes a key partly masked)."""
    for secret in secrets:
        text = text.replace(secret, "***")
    for secret in secrets:
        if len(secret) >= 2 * _SECRET_FRAGMENT and (
            secret[:_SECRET_FRAGMENT] in text or secret[-_SECRET_FRAGMENT:] in text
        ):
            return ""
    return text


def _provider_text(err: Exception, secrets: tuple[str, ...]) -> str:
    """The provider's own error message (`{"error": {"message"}}`; the openai SDK's body is the inner
    object already), scrubbed; nothing else of the body, which a base URL pointing at some other
    service could fill with anything."""
    body = getattr(err, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str):
        return ""
    text = scrub(message, secrets)[:_MAX_PROVIDER_TEXT]
    return f": {text}" if text else ""


def retry_after(response: Any, cap: float) -> float | None:
    """Seconds the provider asked to wait (`Retry-After`: seconds or an HTTP date), at most `cap`."""
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return min(max(float(value) / 1000, 0.0), cap)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        seconds = parsed.timestamp() - time.time()
    return min(max(seconds, 0.0), cap)


def _sdk_errors() -> tuple[
    tuple[type[Exception], ...], tuple[type[Exception], ...], tuple[type[Exception], ...]
]:
    """(status, timeout, connection) error classes of the SDKs loaded (anthropic only once used)."""
    status: list[type[Exception]] = [openai.APIStatusError]
    timeout: list[type[Exception]] = [openai.APITimeoutError]
    connection: list[type[Exception]] = [openai.APIConnectionError]
    other = sys.modules.get("anthropic")
    if other is not None:
        status.append(other.APIStatusError)
        timeout.append(other.APITimeoutError)
        connection.append(other.APIConnectionError)
    return tuple(status), tuple(timeout), tuple(connection)


def classify(err: Exception, provider: str, secrets: tuple[str, ...], cap: float) -> ApplicationError:
    """The Temporal failure of a provider error (either SDK): non-retryable (auth, bad request,
    unknown model) or retryable (429, and Anthropic's 529 overloaded, after their Retry-After; 5xx,
    timeouts and lost connections with backoff)."""
    status_errors, timeouts, connections = _sdk_errors()
    if isinstance(err, status_errors):
        status, text = int(getattr(err, "status_code", 0)), _provider_text(err, secrets)
        if status in (401, 403):
            return ApplicationError(
                f"{provider} refused the credentials (HTTP {status}){text}", type="auth", non_retryable=True
            )
        if status == 404:
            return ApplicationError(
                f"{provider} does not know the model or endpoint (HTTP {status}){text}",
                type="not_found",
                non_retryable=True,
            )
        if status in (400, 413, 422):
            return ApplicationError(
                f"{provider} rejected the request (HTTP {status}){text}",
                type="bad_request",
                non_retryable=True,
            )
        delay = retry_after(getattr(err, "response", None), cap) if status in (429, 503, 529) else None
        next_delay = timedelta(seconds=delay) if delay is not None else None
        if status == 429:
            return ApplicationError(
                f"{provider} rate limit (HTTP 429){text}", type="rate_limit", next_retry_delay=next_delay
            )
        if status == 529:
            return ApplicationError(
                f"{provider} is overloaded (HTTP 529){text}",
                type="provider_error",
                next_retry_delay=next_delay,
            )
        return ApplicationError(
            f"{provider} failed (HTTP {status}){text}", type="provider_error", next_retry_delay=next_delay
        )
    if isinstance(err, timeouts):
        return ApplicationError(f"{provider} did not answer in time", type="timeout")
    if isinstance(err, connections):
        return ApplicationError(f"{provider} could not be reached", type="connection")
    return ApplicationError(f"{provider} call failed: {type(err).__name__}", type="provider_error")


@functools.cache
def prices() -> dict[str, dict[str, float]]:
    """USD per million tokens by model id (`llm_prices.json`), read when first needed."""
    data: dict[str, Any] = json.loads(Path(__file__).with_name("llm_prices.json").read_text())
    table: dict[str, dict[str, float]] = data["models"]
    return table


def cost(model_id: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    price = prices().get(model_id)
    if price is None:
        return None
    return round((prompt_tokens * price["input"] + completion_tokens * price["output"]) / 1_000_000, 8)
