"""Fixtures shared by the end-to-end tests (the stack itself is in tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Stack, Tenant, add_user
from tests.e2e.v1_client import V1, connect, root_folder
from tests.llm_stub import LlmStub


@pytest.fixture
def v1(live_api: str, tenant: Tenant) -> V1:
    """The ksapi client of the tenant's owner, against a live API process."""
    return connect(live_api, tenant.key)


@pytest.fixture
def root(v1: V1) -> uuid.UUID:
    return root_folder(v1)


@pytest.fixture(scope="session")
async def member(stack: Stack, tenant: Tenant) -> Tenant:
    """A USER of the same tenant (not the owner)."""
    return await add_user(stack.database_url, tenant, "USER")


@pytest.fixture(scope="module")
def stub() -> Iterator[LlmStub]:
    """The loopback LLM provider (OpenAI and Anthropic wire formats), one per test module."""
    with LlmStub().running() as s:
        yield s


@pytest.fixture
def provider(stub: LlmStub) -> LlmStub:
    """The module's stub with its requests, faults and scripted turns cleared."""
    stub.reset()
    return stub


@pytest.fixture
def log() -> Iterator[Path]:
    """A file an agent's Python tools append to (outside /tmp: sandboxed code has a private one)."""
    folder = Path(__file__).resolve().parents[2] / ".artifacts" / "agent-tools"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.log"
    path.touch()
    path.chmod(0o666)  # the sandbox runs the code as another user
    yield path
    path.unlink(missing_ok=True)
