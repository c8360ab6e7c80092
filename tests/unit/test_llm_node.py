"""SingleLLMCallNode without a server: its catalogue entry against PySpur's own, its definition
checks, and how the activity builds a request and reads a reply (messages, schema, repair, errors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from activities import llm_messages as msgs
from activities import llm_providers as providers
from errors import InvalidDefinition
from workflows import graph, nodes
from workflows.definition import WorkflowDefinition, WorkflowNode

# `model_json_schema()` of PySpur 0.1.18's own classes (SingleLLMCallNodeConfig, BestOfNNodeConfig and
# their input/output models, from the `pyspur==0.1.18` wheel's source) and its visual-tag rule.
PYSPUR = json.loads((Path(__file__).parent / "data" / "pyspur_llm_catalogue.json").read_text())
OURS_ONLY = {"max_attempts", "max_total_seconds", "timeout_seconds"}


def entry(name: str) -> dict[str, Any]:
    return next(n for group in nodes.supported_types().values() for n in group if n["name"] == name)


def llm(config: dict[str, Any]) -> WorkflowNode:
    return WorkflowNode(id="llm", title="Writer", node_type="SingleLLMCallNode", config=config)


def test_catalogue_entry_is_pyspurs_schema_plus_the_retry_bounds() -> None:
    ours, theirs = entry("SingleLLMCallNode"), PYSPUR["SingleLLMCallNode"]
    assert ours["config"]["$defs"] == theirs["config"]["$defs"]
    assert {k: v for k, v in ours["config"]["properties"].items() if k not in OURS_ONLY} == theirs["config"][
        "properties"
    ]
    assert ours["config"]["title"] == "Single LLM Call"
    assert "description" not in ours["config"]
    assert (ours["input"], ours["output"], ours["visual_tag"]) == (
        theirs["input"],
        theirs["output"],
        theirs["visual_tag"],
    )
    assert len(ours["model_constraints"]) == 45
    assert ours["model_constraints"]["deepseek/deepseek-chat"]["supports_JSON_output"] is False


def test_best_of_n_catalogue_entry_is_pyspurs_schema_plus_the_retry_bounds() -> None:
    ours, theirs = entry("BestOfNNode"), PYSPUR["BestOfNNode"]
    assert ours["config"]["$defs"] == theirs["config"]["$defs"]
    assert {k: v for k, v in ours["config"]["properties"].items() if k not in OURS_ONLY} == theirs["config"][
        "properties"
    ]
    assert (ours["input"], ours["output"], ours["visual_tag"]) == (
        theirs["input"],
        theirs["output"],
        theirs["visual_tag"],
    )
    assert "model_constraints" not in ours  # PySpur adds it to the single-call node only


def test_any_model_of_a_known_provider_is_accepted_and_an_unknown_provider_is_refused() -> None:
    nodes.validate_node(llm({"llm_info": {"model": "openai/my-vllm-model", "max_tokens": 5}}))
    with pytest.raises(InvalidDefinition, match="provider one of"):
        nodes.validate_node(llm({"llm_info": {"model": "mystery/model", "max_tokens": 5}}))


@pytest.mark.parametrize(
    ("config", "fault"),
    [
        ({"output_json_schema": "{not json"}, "output_json_schema is not JSON"),
        ({"user_message": "{{ Title.field "}, "user_message is not a valid template"),
        ({"few_shot_examples": [{"input": "x"}]}, r"few_shot_examples\[0\] needs 'input' and 'output'"),
    ],
)
def test_definition_faults_are_refused_on_save_naming_the_field(config: dict[str, Any], fault: str) -> None:
    with pytest.raises(InvalidDefinition, match=fault):
        nodes.validate_node(llm(config))


def test_null_output_json_schema_from_the_editor_means_the_default() -> None:
    nodes.validate_node(llm({"output_json_schema": None}))


def test_messages_are_system_few_shot_history_user_in_pyspurs_order() -> None:
    inputs = {"In": {"q": "why", "h": [{"role": "user", "content": "earlier"}]}}
    config = {
        "system_message": "Sys {{In.q}}",
        "user_message": "Ask {{ In.q }}",
        "few_shot_examples": [{"input": "a", "output": "b"}],
        "enable_message_history": True,
        "message_history_variable": "In.h",
    }
    assert msgs.build_messages(config, inputs) == [
        {"role": "system", "content": "Sys why"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "earlier"},
        {"role": "user", "content": "Ask why"},
    ]


def test_template_naming_a_missing_field_fails_naming_it() -> None:
    with pytest.raises(msgs.LlmNodeError, match="has no attribute 'missing'"):
        msgs.build_messages({"user_message": "{{ In.missing }}"}, {"In": {"q": 1}})


def test_templates_are_sandboxed() -> None:
    with pytest.raises(msgs.LlmNodeError):
        msgs.build_messages({"user_message": "{{ In.__class__.__mro__ }}"}, {"In": {}})


def test_strict_schema_requires_every_property_at_every_level() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}},
    }
    strict = msgs.strict_schema(schema)
    assert strict["required"] == ["a"] and strict["additionalProperties"] is False
    assert strict["properties"]["a"]["required"] == ["b"]
    assert "required" not in schema  # the node's own schema is left as it was


@pytest.mark.parametrize(
    "content",
    ['{"title": "x", "n": 2}', '```json\n{"title": "x", "n": 2}\n```', "{'title': 'x', 'n': 2,}"],
)
def test_replies_are_parsed_or_repaired_into_the_schema_fields(content: str) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}, "n": {"type": "integer"}}}
    assert msgs.parse_reply(content, schema) == {"title": "x", "n": 2}


def test_reply_with_a_wrongly_typed_field_fails_naming_it() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    with pytest.raises(msgs.LlmNodeError, match="Field 'n' should be integer, got str"):
        msgs.parse_reply('{"n": "two"}', schema)


def test_scrub_removes_keys_and_drops_text_holding_a_fragment_of_one() -> None:
    key = "sk-abcdefghijklmnopqrstuvwxyz"
    assert scrub_all(f"bad key {key}", key) == "bad key ***"
    assert scrub_all(f"Incorrect API key provided: {key[:8]}****{key[-4:]}", key) == ""


def scrub_all(text: str, key: str) -> str:
    return providers.scrub(text, (key,))


def test_retry_after_takes_seconds_or_a_date_and_is_capped() -> None:
    assert providers.retry_after(httpx.Response(429, headers={"retry-after": "3"}), 60) == 3
    assert providers.retry_after(httpx.Response(429, headers={"retry-after": "999"}), 60) == 60
    assert providers.retry_after(httpx.Response(429, headers={"retry-after-ms": "1500"}), 60) == 1.5
    assert providers.retry_after(httpx.Response(429), 60) is None


def test_missing_key_names_the_setting_and_where_to_set_it() -> None:
    with pytest.raises(providers.MissingKey, match=r"No ANTHROPIC_API_KEY .*POST /env-mgmt/"):
        providers.route("anthropic/claude-3-5-haiku-latest", {}, httpx.AsyncClient(), 5)


def test_routes_strip_the_provider_prefix_and_use_the_tenant_base_url() -> None:
    route = providers.route(
        "openai/gpt-4o", {"OPENAI_API_KEY": "k", "OPENAI_API_BASE": "http://h/v1"}, httpx.AsyncClient(), 5
    )
    assert (route.model, str(route.client.base_url), route.secrets) == ("gpt-4o", "http://h/v1/", ("k",))
    azure = providers.route(
        "azure/gpt-4",
        {"AZURE_OPENAI_API_KEY": "k", "AZURE_OPENAI_ENDPOINT": "http://az", "AZURE_OPENAI_API_VERSION": "v"},
        httpx.AsyncClient(),
        5,
    )
    assert isinstance(azure.client, openai.AsyncAzureOpenAI)


def test_calls_with_the_same_values_share_one_client_and_a_new_key_gets_its_own() -> None:
    http, clients = httpx.AsyncClient(), providers.Clients(size=2)
    values = {"OPENAI_API_KEY": "k1", "OPENAI_API_BASE": "http://h/v1"}
    first = providers.route("openai/gpt-4o", values, http, 5, clients).client
    assert providers.route("openai/gpt-4o-mini", values, http, 5, clients).client is first
    other = providers.route("openai/gpt-4o", {**values, "OPENAI_API_KEY": "k2"}, http, 5, clients).client
    assert other is not first and other.api_key == "k2"
    assert providers.route("openai/gpt-4o", values, http, 60, clients).client is not first  # timeout
    # Past `size`, the least recently used is dropped and built again when next needed.
    assert providers.route("openai/gpt-4o", values, http, 5, clients).client is not first


def test_cost_comes_from_the_price_table_and_unknown_models_have_none() -> None:
    assert providers.cost("openai/gpt-4o", 1_000_000, 0) == 2.5
    assert providers.cost("openai/my-vllm-model", 10, 10) is None


def graph_with(user_message: str) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {
            "nodes": [
                {"id": "in", "title": "In", "node_type": "InputNode", "config": {"output_schema": {"q": "string"}}},
                {"id": "llm", "title": "Writer", "node_type": "SingleLLMCallNode",
                 "config": {"user_message": user_message, "system_message": "Hi {{ In.q }}"}},
            ],
            "links": [{"source_id": "in", "target_id": "llm"}],
        }
    )  # fmt: skip


def test_templates_may_name_only_predecessor_titles() -> None:
    graph.validate_definition(graph_with("{% for x in range(2) %}{{ In.q }}{% endfor %}"))
    with pytest.raises(InvalidDefinition, match="user_message names 'Out', which is not the title of a node"):
        graph.validate_definition(graph_with("{{ Out.q }}"))


def test_provider_errors_carry_only_the_providers_own_message() -> None:
    request = httpx.Request("POST", "http://h/v1/chat/completions")
    own = openai.BadRequestError(
        "x", response=httpx.Response(400, request=request), body={"message": "bad model"}
    )
    other = openai.BadRequestError(
        "x", response=httpx.Response(400, request=request), body="<html>internal</html>"
    )
    assert (
        providers.classify(own, "openai", (), 60).message
        == "openai rejected the request (HTTP 400): bad model"
    )
    assert providers.classify(other, "openai", (), 60).message == "openai rejected the request (HTTP 400)"


def test_agent_catalogue_entry_is_pyspurs_schema_plus_the_retry_bounds() -> None:
    ours, theirs = entry("AgentNode"), PYSPUR["AgentNode"]
    assert ours["config"]["$defs"] == theirs["config"]["$defs"]
    properties = {k: dict(v) for k, v in ours["config"]["properties"].items() if k not in OURS_ONLY}
    # Ours bounds max_iterations (the conversation must fit Temporal's history); PySpur does not.
    assert (properties["max_iterations"].pop("minimum"), properties["max_iterations"].pop("maximum")) == (
        1,
        50,
    )
    assert properties == theirs["config"]["properties"]
    assert ours["config"]["description"] == theirs["config"]["description"]
    assert (ours["input"], ours["output"], ours["visual_tag"]) == (
        theirs["input"],
        theirs["output"],
        theirs["visual_tag"],
    )
    assert "model_constraints" not in ours  # PySpur adds it to the single-call node only
