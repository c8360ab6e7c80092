"""How a node's call becomes an Anthropic Messages API request (the wire itself is tested against
the stub in tests/e2e/test_llm_providers.py)."""

from __future__ import annotations

from typing import Any

from activities import llm_anthropic

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}}


def messages() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "system", "content": "History said this."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ],
        },
    ]


def test_system_messages_join_the_system_field_and_image_urls_become_url_image_sources() -> None:
    config = {"llm_info": {"max_tokens": 100, "temperature": 0.5}}
    body = llm_anthropic.request("claude-x", config, messages(), SCHEMA, thinking=False)
    assert body["system"] == "Be brief.\nHistory said this."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][-1]["content"][1] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/a.png"},
    }
    assert body["tool_choice"] == {"type": "tool", "name": "output"}
    assert body["tools"][0]["input_schema"]["required"] == ["a"]
    assert (body["max_tokens"], body["temperature"]) == (100, 0.5)


def test_thinking_clamps_the_budget_below_max_tokens_and_drops_tool_and_temperature() -> None:
    config = {"llm_info": {"max_tokens": 1500, "temperature": 0.5}, "thinking_budget_tokens": 4000}
    body = llm_anthropic.request("claude-x", config, messages(), SCHEMA, thinking=True)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1499}
    assert "tools" not in body and "temperature" not in body
    assert "adhere to this schema" in body["system"]
    assert llm_anthropic.thinking_budget({}, 8000) == 1024


def test_a_model_without_json_output_gets_no_tool() -> None:
    body = llm_anthropic.request("claude-x", {"llm_info": {}}, messages()[:2], None, thinking=False)
    assert "tools" not in body and body["max_tokens"] == 1024
