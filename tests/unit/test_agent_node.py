"""AgentNode without a server: which graphs may hold one, the function schema each tool gets, and
how a tool call's arguments are checked before anything runs."""

from __future__ import annotations

from typing import Any

from tests.builders import agent_graph, input_node, tool_node
from workflows import graph
from workflows.definition import WorkflowDefinition, WorkflowNode
from workflows.node_kinds.agent import function_schema, parse_arguments, tool_settings


def problems(defn: dict[str, Any]) -> list[str]:
    return [p.detail for p in graph.definition_problems(WorkflowDefinition.model_validate(defn))]


def weather(**config: Any) -> dict[str, Any]:
    return tool_node("weather", "return {'result': 1}", {"city": "string", "days": "integer"}, **config)


def test_an_agent_with_child_tool_nodes_is_runnable_and_its_children_are_not_top_level_nodes() -> None:
    defn = WorkflowDefinition.model_validate(agent_graph([weather()]))
    graph.validate_definition(defn)
    assert "weather" not in graph.GraphPlan.build(defn).order


def test_an_agent_without_tools_or_with_unusable_tools_is_a_draft_problem_naming_them() -> None:
    assert problems(agent_graph([])) == [
        "Agent 'agent' has no tools: give it child nodes (parent_id 'agent')"
    ]
    entry = {**input_node(node_id="nested_input"), "parent_id": "agent"}
    spaced = tool_node("two words", "return {}", {})
    twin = {**tool_node("weather2", "return {}", {}), "title": "Weather"}
    typo = tool_node("typo", "return {}", {"city": "strnig"})
    found = problems(agent_graph([entry, spaced, weather(), twin, typo]))
    assert found == [
        "Agent 'agent': a InputNode ('nested_input') cannot be a tool",
        "Agent 'agent': tool 'two words' is named by its title 'two words', which must be 1-64 letters, "
        "digits, '_' or '-'",
        "Agent 'agent': tools 'weather' and 'weather2' share the title 'Weather'",
        "Agent 'agent': tool 'typo' input_schema has unknown type 'strnig'",
    ]


def test_an_agent_whose_tool_needs_approval_is_a_human_step() -> None:
    plain = WorkflowDefinition.model_validate(agent_graph([weather()]))
    gated = WorkflowDefinition.model_validate(agent_graph([weather(requires_approval=True)]))
    assert graph.human_step([plain]) is None
    assert graph.human_step([gated]) == "agent"


def test_tool_function_schema_is_named_by_title_with_the_input_fields_as_parameters() -> None:
    node = WorkflowNode.model_validate(weather(description="Forecast for a city"))
    assert function_schema(node, tool_settings(node)) == {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Forecast for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city", "days"],
            },
        },
    }


def test_arguments_that_do_not_fit_the_tool_are_told_to_the_model() -> None:
    settings = tool_settings(WorkflowNode.model_validate(weather()))
    assert parse_arguments('{"city": "Oslo", "days": 2}', settings) == ({"city": "Oslo", "days": 2}, None)
    assert (
        parse_arguments("{oops", settings)[1]
        == "the arguments are not JSON (Expecting property name enclosed in double quotes)"
    )
    assert parse_arguments("[1]", settings)[1] == "the arguments must be a JSON object"
    assert parse_arguments('{"city": "Oslo"}', settings)[1] == "argument 'days' is missing"
    assert (
        parse_arguments('{"city": "Oslo", "days": true}', settings)[1]
        == "argument 'days' should be integer, got bool"
    )


def test_an_agent_on_an_anthropic_model_is_a_valid_graph() -> None:
    found = problems(
        agent_graph(
            [weather()],
            llm_info={"model": "anthropic/claude-3-5-sonnet-latest", "max_tokens": 256, "temperature": 0.2},
        )
    )
    assert found == []
