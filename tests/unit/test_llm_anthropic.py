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


PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = {
    "type": "function",
    "function": {"name": "weather", "description": "The weather of a city", "parameters": PARAMETERS},
}


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_an_agent_turn_offers_its_tools_unforced_with_the_output_schema_in_the_system_prompt() -> None:
    config = {"llm_info": {"max_tokens": 100, "temperature": 0.5}}
    body = llm_anthropic.request("claude-x", config, messages()[:2], SCHEMA, thinking=False, tools=[WEATHER])
    assert body["tools"] == [
        {
            "name": "weather",
            "description": "The weather of a city",
            "input_schema": PARAMETERS,
        }
    ]
    assert "tool_choice" not in body and body["temperature"] == 0.5
    assert body["system"].startswith("Be brief.\n") and "adhere to this schema" in body["system"]


def test_the_runs_conversation_maps_to_tool_use_blocks_and_one_message_of_tool_results() -> None:
    conversation: list[dict[str, Any]] = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "Two cities.",
            "tool_calls": [call("toolu_1", "weather", '{"city": "Oslo"}'), call("toolu_2", "nope", "{}")],
            "thinking_blocks": [{"type": "thinking", "thinking": "hm", "signature": "s"}],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": '{"result": "rain"}'},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no tool", "is_error": True},
    ]
    assert llm_anthropic.conversation(conversation)[1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hm", "signature": "s"},
                {"type": "text", "text": "Two cities."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "toolu_2", "name": "nope", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"result": "rain"}'},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": "Error: no tool",
                    "is_error": True,
                },
            ],
        },
    ]


def message(content: list[dict[str, Any]], stop: str) -> Any:
    from anthropic.types import Message

    return Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": content,
            "stop_reason": stop,
            "usage": {"input_tokens": 30, "output_tokens": 12},
        }
    )


def test_tool_use_blocks_of_a_reply_become_the_turns_tool_calls_in_order_with_thinking_kept() -> None:
    reply = llm_anthropic.reply_of(
        message(
            [
                {"type": "thinking", "thinking": "hm", "signature": "s"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "toolu_2", "name": "output", "input": {"a": "x"}},
            ],
            "tool_use",
        ),
        {"tools": []},
    )
    assert reply.assistant_message() == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            call("toolu_1", "weather", '{"city": "Oslo"}'),
            # Unforced, a tool titled like the output tool is one of the agent's tools.
            call("toolu_2", "output", '{"a": "x"}'),
        ],
        "thinking_blocks": [{"type": "thinking", "thinking": "hm", "signature": "s"}],
    }
    assert (reply.prompt_tokens, reply.completion_tokens, reply.finish_reason) == (30, 12, "tool_use")


def test_a_forced_output_tool_is_the_content_not_a_tool_call() -> None:
    reply = llm_anthropic.reply_of(
        message([{"type": "tool_use", "id": "t", "name": "output", "input": {"a": "x"}}], "tool_use"),
        {"tool_choice": {"type": "tool", "name": "output"}},
    )
    assert reply.content == '{"a": "x"}' and reply.tool_calls == []
