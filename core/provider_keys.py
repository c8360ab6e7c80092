"""Tenants' LLM provider settings under PySpur's environment names (`/env-mgmt/`), encrypted at rest.

A tenant's stored value overrides the instance default from settings for that tenant's runs. Values
are Fernet tokens in the database; the plaintext exists only in the request that sets it and in the
activity that uses it at call time (never in a workflow input, a result, a log or a response).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.ext.asyncio import AsyncSession

from core import llm_egress
from db import provider_keys as repo
from errors import BadRequest, NotFound, Unavailable
from settings import Settings


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    required: bool = True
    type: str = "password"  # password | text (PySpur's ProviderParameter.type)


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    description: str
    icon: str
    parameters: tuple[Param, ...]


# PySpur 0.1.18's LLM providers (api/key_management.py PROVIDER_CONFIGS) that this service calls,
# plus base URLs that route models to any compatible server (checked by `llm_egress`).
PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "openai",
        "OpenAI",
        "OpenAI's GPT models, or any OpenAI-compatible server by base URL",
        "openai",
        (
            Param("OPENAI_API_KEY", "OpenAI API Key"),
            Param("OPENAI_API_BASE", "Base URL of an OpenAI-compatible API", required=False, type="text"),
        ),
    ),
    Provider(
        "azure-openai",
        "Azure OpenAI",
        "Azure-hosted OpenAI models",
        "azure",
        (
            Param("AZURE_OPENAI_API_KEY", "Azure OpenAI API Key"),
            Param("AZURE_OPENAI_ENDPOINT", "Azure OpenAI Endpoint URL", type="text"),
            Param("AZURE_OPENAI_API_VERSION", "API Version (e.g. 2023-05-15)", type="text"),
        ),
    ),
    Provider(
        "anthropic",
        "Anthropic",
        "Anthropic's Claude models",
        "anthropic",
        (
            Param("ANTHROPIC_API_KEY", "Anthropic API Key"),
            Param("ANTHROPIC_BASE_URL", "Base URL of the Anthropic API", required=False, type="text"),
        ),
    ),
    Provider(
        "gemini",
        "Google Gemini",
        "Google's Gemini models",
        "google",
        (
            Param("GEMINI_API_KEY", "Google AI API Key"),
            Param(
                "GEMINI_API_BASE", "Base URL of Gemini's OpenAI-compatible API", required=False, type="text"
            ),
        ),
    ),
    Provider(
        "deepseek",
        "DeepSeek",
        "DeepSeek's code and chat models",
        "deepseek",
        (
            Param("DEEPSEEK_API_KEY", "DeepSeek API Key"),
            Param("DEEPSEEK_API_BASE", "Base URL of the DeepSeek API", required=False, type="text"),
        ),
    ),
    Provider(
        "ollama",
        "Ollama",
        "Local models served by Ollama",
        "ollama",
        (Param("OLLAMA_BASE_URL", "Ollama server URL", type="text"),),
    ),
)

PARAMS: dict[str, Param] = {p.name: p for provider in PROVIDERS for p in provider.parameters}
MAX_VALUE_CHARS = 4096


def mask(value: str, param_type: str = "password") -> str:
    """PySpur's masking: secrets show their first and last 4 characters (all stars when short)."""
    if param_type != "password":
        return value
    if len(value) <= 12:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def settings_default(settings: Settings, name: str) -> str | None:
    """The instance-wide value of a PySpur env name (settings fields are its lower-case form)."""
    value = getattr(settings, name.lower(), None)
    return value if isinstance(value, str) and value else None


def cipher(settings: Settings) -> Fernet:
    """The Fernet of PROVIDER_KEYS_SECRET, or of a key generated once into the data directory."""
    if settings.provider_keys_secret:
        try:
            return Fernet(settings.provider_keys_secret.encode())
        except ValueError:
            raise Unavailable(
                "PROVIDER_KEYS_SECRET is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    path = settings.resolved_data_dir / "provider-keys.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: the API and the worker may both get here first; the loser reads the winner's key.
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
    return Fernet(_read_key(path))


def _read_key(path: Path) -> bytes:
    return path.read_bytes().strip()


def _param(name: str) -> Param:
    param = PARAMS.get(name)
    if param is None:
        raise NotFound(f"Key '{name}' not found: settable keys are {', '.join(PARAMS)}")
    return param


async def masked(session: AsyncSession, fernet: Fernet, tenant_id: uuid.UUID, name: str) -> str:
    """The tenant's value, masked ("" when the tenant has none)."""
    param = _param(name)
    stored = await repo.load(session, tenant_id, [name])
    if name not in stored:
        return ""
    return mask(_decrypt(fernet, stored[name]), param.type)


async def put(
    session: AsyncSession,
    fernet: Fernet,
    tenant_id: uuid.UUID,
    name: str,
    value: str | None,
    egress: llm_egress.Policy | None = None,
) -> None:
    """`egress`: the rule base URLs must pass (None: not checked)."""
    _param(name)
    if not value:
        raise BadRequest("Value is required")
    if len(value) > MAX_VALUE_CHARS:
        raise BadRequest(f"Value of '{name}' is longer than {MAX_VALUE_CHARS} characters")
    if egress is not None and name in llm_egress.BASE_NAMES:
        try:
            await llm_egress.check(name, value.strip(), egress)
        except llm_egress.Refused as err:
            raise BadRequest(str(err)) from None
    await repo.store(session, tenant_id, name, fernet.encrypt(value.encode()))


async def drop(session: AsyncSession, tenant_id: uuid.UUID, name: str) -> None:
    _param(name)
    if not await repo.remove(session, tenant_id, name):
        raise NotFound(f"Key '{name}' is not set")


async def resolve(
    session: AsyncSession, fernet: Fernet, settings: Settings, tenant_id: uuid.UUID, names: list[str]
) -> dict[str, str]:
    """The values a call needs: the tenant's own, else the instance default; names without either
    are left out."""
    stored = await repo.load(session, tenant_id, names)
    values: dict[str, str] = {}
    for name in names:
        if name in stored:
            values[name] = _decrypt(fernet, stored[name])
        elif (default := settings_default(settings, name)) is not None:
            values[name] = default
    return values


def _decrypt(fernet: Fernet, token: bytes) -> str:
    try:
        return fernet.decrypt(token).decode()
    except InvalidToken:
        # The secret changed since the value was stored: treat it as unreadable, never echo it.
        raise BadRequest(
            "A stored provider key cannot be decrypted with the current PROVIDER_KEYS_SECRET"
        ) from None
