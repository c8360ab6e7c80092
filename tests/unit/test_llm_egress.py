"""The egress rule for tenants' LLM base URLs: public addresses pass, internal ones are refused
naming the rule unless the instance allow-lists them or configured that base itself."""

from __future__ import annotations

import pytest

from core import llm_egress
from settings import Settings


def rule(**values: str) -> llm_egress.Policy:
    return llm_egress.policy(Settings(_env_file=None, **values))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8000/v1", "loopback address 127.0.0.1"),
        ("http://[::ffff:127.0.0.1]/v1", "loopback address ::ffff:127.0.0.1 (127.0.0.1)"),
        ("http://169.254.169.254/latest", "link-local address 169.254.169.254"),
        ("http://192.168.1.5/v1", "private address 192.168.1.5"),
        ("http://localhost:11434", "loopback address"),
    ],
)
async def test_internal_addresses_are_refused_naming_the_rule(url: str, kind: str) -> None:
    with pytest.raises(llm_egress.Refused) as err:
        await llm_egress.check("OPENAI_API_BASE", url, rule())
    assert kind in str(err.value) and "LLM_ALLOWED_HOSTS" in str(err.value)


async def test_public_addresses_and_the_allow_list_pass() -> None:
    await llm_egress.check("OPENAI_API_BASE", "https://8.8.8.8/v1", rule())
    allowed = rule(llm_allowed_hosts="10.0.0.0/8, ollama.internal")
    await llm_egress.check("OLLAMA_BASE_URL", "http://10.2.3.4:11434", allowed)
    await llm_egress.check("OLLAMA_BASE_URL", "http://ollama.internal:11434", allowed)
    with pytest.raises(llm_egress.Refused):
        await llm_egress.check("OLLAMA_BASE_URL", "http://172.16.0.1", allowed)


async def test_the_instance_configured_base_host_passes() -> None:
    configured = rule(ollama_base_url="http://127.0.0.1:11434")
    await llm_egress.check("OPENAI_API_BASE", "http://127.0.0.1:9999/v1", configured)


async def test_only_http_urls_with_a_host_are_accepted() -> None:
    for url in ("file:///etc/passwd", "gopher://example.com", "http:///v1"):
        with pytest.raises(llm_egress.Refused, match="must be an http:// or https:// URL"):
            await llm_egress.check("OPENAI_API_BASE", url, rule())
