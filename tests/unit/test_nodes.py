"""Node types: catalogue, definition checks, run-input validation and pure evaluation (no server)."""

from __future__ import annotations

import json
from hashlib import md5
from typing import Any

import pytest

from errors import InvalidDefinition, InvalidInput
from workflows import nodes
from workflows.definition import WorkflowNode, chatbot_definition, default_definition
from workflows.node_configs import PythonFuncNodeConfig
from workflows.node_kinds.base import NodeKind
from workflows.nodes import (
    NODE_CATALOGUE,
    NodeEvaluationError,
    evaluate_pure,
    validate_node,
    validate_run_inputs,
)


def node(node_type: str, config: dict[str, Any] | None = None, node_id: str = "n1") -> WorkflowNode:
    return WorkflowNode(id=node_id, node_type=node_type, config=config or {})


def router(route_map: dict[str, Any]) -> WorkflowNode:
    return node("RouterNode", {"route_map": route_map}, "router")


def cond(variable: str, operator: str, value: Any = None, logical: str | None = "AND") -> dict[str, Any]:
    return {"variable": variable, "operator": operator, "value": value, "logicalOperator": logical}


def input_node(config: dict[str, Any]) -> WorkflowNode:
    return node("InputNode", config, "input_node")


# -- catalogue ---------------------------------------------------------------------------------------


def test_supported_types_groups_nodes_like_pyspur() -> None:
    body = nodes.supported_types()
    assert {group: [n["name"] for n in entries] for group, entries in body.items()} == {
        "Input/Output": ["InputNode", "OutputNode"],
        "AI": ["SingleLLMCallNode", "AgentNode", "BestOfNNode"],
        "Code Execution": ["PythonFuncNode"],
        "Logic": [
            "RouterNode",
            "CoalesceNode",
            "MergeNode",
            "StaticValueNode",
            "HumanInterventionNode",
            "SubworkflowNode",
        ],
        "Experimental": ["ForLoopNode"],
    }


def test_supported_types_entries_have_pyspur_keys_and_display_titles() -> None:
    entries = {n["name"]: n for group in nodes.supported_types().values() for n in group}
    titles = {name: entry["config"]["title"] for name, entry in entries.items()}
    assert titles == {
        "InputNode": "Input",
        "OutputNode": "Output",
        "SingleLLMCallNode": "Single LLM Call",
        "AgentNode": "Agent",
        "BestOfNNode": "Best of N",
        "PythonFuncNode": "Python Function",
        "RouterNode": "Router",
        "CoalesceNode": "Coalesce",
        "MergeNode": "Merge",
        "StaticValueNode": "Static Value",
        "HumanInterventionNode": "HumanIntervention",
        "SubworkflowNode": "Subworkflow",
        "ForLoopNode": "ForLoopNode",
    }
    for entry in entries.values():
        # PySpur's LLM node also carries `model_constraints` (the model picker's limits).
        assert set(entry) - {"model_constraints"} == {
            "name",
            "input",
            "output",
            "config",
            "visual_tag",
            "has_fixed_output",
        }
        assert entry["has_fixed_output"] is False
    assert entries["RouterNode"]["output"] == {}
    assert entries["InputNode"]["input"] == {"properties": {}, "title": "InputNodeInput", "type": "object"}


def test_visual_tags_follow_pyspur_md5_colour_rule() -> None:
    # PySpur: colour = palette[md5(class name) % 19]; acronym = initials of the class's snake-case name.
    palette = ["#007BFF", "#28A745", "#FFC107", "#DC3545", "#6F42C1", "#FD7E14", "#20C997", "#E83E8C", "#17A2B8",
               "#6610F2", "#8CC63F", "#FF00FF", "#FFD700", "#FF7F50", "#40E0D0", "#00BFFF", "#FF5522", "#FA8072",
               "#8A2BE2"]  # fmt: skip
    explicit = {"AgentNode": "#fb8500"}  # PySpur gives AgentNode its own visual tag
    for group in nodes.supported_types().values():
        for entry in group:
            expected = (
                explicit.get(entry["name"])
                or palette[int(md5(entry["name"].encode()).hexdigest(), 16) % len(palette)]
            )
            assert entry["visual_tag"]["color"] == expected
    assert NODE_CATALOGUE["StaticValueNode"].acronym == "CVN"  # PySpur's class name is constant_value_node


def test_supported_types_config_schemas_carry_editor_defaults() -> None:
    entries = {n["name"]: n for group in nodes.supported_types().values() for n in group}
    python_config = entries["PythonFuncNode"]["config"]
    assert "code" in python_config["required"]
    assert python_config["properties"]["code"]["default"].startswith("# Write your Python code here.")
    assert entries["StaticValueNode"]["config"]["required"] == ["values"]
    assert entries["InputNode"]["config"]["properties"]["output_schema"]["default"] == {"input_1": "string"}
    assert "route1" in entries["RouterNode"]["config"]["properties"]["route_map"]["default"]
    hi = entries["HumanInterventionNode"]["config"]["properties"]
    assert hi["on_timeout"]["default"] == "fail"
    assert hi["continue_on_decline"]["default"] is False


def test_supported_types_returns_a_fresh_copy() -> None:
    nodes.supported_types()["Logic"][0]["input"]["mutated"] = True
    assert "mutated" not in nodes.supported_types()["Logic"][0]["input"]


def test_catalogue_kinds_and_runnable_set() -> None:
    assert "HumanInterventionNode" in nodes.NODE_TYPES_IMPLEMENTED
    assert NODE_CATALOGUE["HumanInterventionNode"].kind is NodeKind.CONTROL
    assert NODE_CATALOGUE["PythonFuncNode"].kind is NodeKind.ACTIVITY
    pure = {name for name, spec in NODE_CATALOGUE.items() if spec.kind is NodeKind.PURE}
    assert pure == {"InputNode", "OutputNode", "StaticValueNode", "RouterNode", "CoalesceNode", "MergeNode"}


# -- validate_node -----------------------------------------------------------------------------------


def test_unknown_node_type_is_rejected() -> None:
    with pytest.raises(InvalidDefinition, match=r"^Node 'x' has unknown node type 'FooNode'$"):
        validate_node(node("FooNode", node_id="x"))


def test_human_intervention_node_config_is_checked() -> None:
    validate_node(
        node(
            "HumanInterventionNode", {"message": "ok?", "timeout_seconds": 5, "on_timeout": "approve"}, "hin"
        )
    )
    with pytest.raises(InvalidDefinition, match="on_timeout"):
        validate_node(node("HumanInterventionNode", {"on_timeout": "later"}, "hin"))


def test_missing_python_code_is_rejected_with_field_path() -> None:
    with pytest.raises(InvalidDefinition) as err:
        validate_node(node("PythonFuncNode", {"output_schema": {"y": "string"}}, "py1"))
    assert err.value.detail == "Node 'py1' (PythonFuncNode): config.code: Field required"


def test_reserved_node_id_is_rejected() -> None:
    with pytest.raises(InvalidDefinition, match="may not start with '_'"):
        validate_node(node("StaticValueNode", {"values": {}}, "_row"))


def test_bad_router_operator_is_rejected_with_nested_path() -> None:
    with pytest.raises(InvalidDefinition, match=r"config\.route_map\.a\.conditions\.0\.operator"):
        validate_node(router({"a": {"conditions": [cond("input_node.n", "bigger")]}}))


def test_python_limit_overrides_must_be_positive() -> None:
    with pytest.raises(InvalidDefinition, match=r"config\.memory_mb"):
        validate_node(node("PythonFuncNode", {"code": "return {}", "memory_mb": 0}))
    config = nodes.parse_config(node("PythonFuncNode", {"code": "return {}", "wall_seconds": 5}))
    assert isinstance(config, PythonFuncNodeConfig)
    assert config.wall_seconds == 5
    assert config.cpu_seconds is None


def test_empty_output_map_path_is_rejected() -> None:
    with pytest.raises(InvalidDefinition, match=r"output_map\.answer is empty"):
        validate_node(node("OutputNode", {"output_map": {"answer": " "}}))


def test_input_node_with_invalid_json_schema_is_rejected() -> None:
    with pytest.raises(InvalidDefinition, match="output_json_schema is not valid JSON"):
        validate_node(input_node({"output_json_schema": "{nope"}))
    with pytest.raises(InvalidDefinition, match="must be an object schema"):
        validate_node(input_node({"output_json_schema": '{"properties": ["a"]}'}))


def test_default_and_chatbot_definitions_validate() -> None:
    for definition in (default_definition(), chatbot_definition()):
        for n in definition.nodes:
            validate_node(n)


def test_config_keeps_ui_keys_and_accepts_pyspur_variants() -> None:
    # The editor may hold output_json_schema as an object and PySpur allows a null logicalOperator.
    config = nodes.parse_config(
        node("MergeNode", {"title": "Merge", "output_json_schema": {"type": "object"}})
    )
    assert config.model_extra == {"title": "Merge"}
    assert json.loads(config.output_json_schema or "") == {"type": "object"}
    validate_node(router({"r": {"conditions": [cond("a", "equals", "x", logical=None)]}}))


# -- run inputs --------------------------------------------------------------------------------------


def test_missing_required_input_is_rejected() -> None:
    with pytest.raises(InvalidInput) as err:
        validate_run_inputs(default_definition().nodes[0], {})
    assert err.value.detail == "Missing required input field 'input_1'"


def test_mistyped_input_is_rejected() -> None:
    with pytest.raises(InvalidInput) as err:
        validate_run_inputs(input_node({"output_schema": {"n": "int"}}), {"n": "3"})
    assert err.value.detail == "Input field 'n' must be integer, got string"


def test_non_object_inputs_are_rejected() -> None:
    with pytest.raises(InvalidInput) as err:
        validate_run_inputs(input_node({}), ["a"])
    assert err.value.detail == "Inputs for 'input_node' must be an object"


def test_every_problem_is_reported() -> None:
    with pytest.raises(InvalidInput) as err:
        validate_run_inputs(input_node({"output_schema": {"a": "string", "b": "bool"}}), {"b": 1})
    assert (
        err.value.detail == "Missing required input field 'a'; Input field 'b' must be boolean, got integer"
    )


@pytest.mark.parametrize(
    ("declared", "value"),
    [("number", 3), ("number", 2.5), ("integer", 2.0), ("string", ""), ("array", []), ("object", {})],
)
def test_input_types_accept_json_equivalents(declared: str, value: Any) -> None:
    validate_run_inputs(input_node({"output_schema": {"x": declared}}), {"x": value})


@pytest.mark.parametrize(("declared", "value"), [("integer", True), ("number", False), ("integer", 2.5)])
def test_booleans_and_fractions_are_not_integers(declared: str, value: Any) -> None:
    with pytest.raises(InvalidInput):
        validate_run_inputs(input_node({"output_schema": {"x": declared}}), {"x": value})


def test_extra_input_fields_are_kept() -> None:
    payload = {"input_1": "a", "extra": 1}
    assert validate_run_inputs(default_definition().nodes[0], payload) == payload


def test_input_node_without_declared_fields_accepts_any_object() -> None:
    assert validate_run_inputs(input_node({}), {"anything": [1]}) == {"anything": [1]}


def test_json_schema_required_list_makes_other_fields_optional() -> None:
    chatbot_input = chatbot_definition().nodes[0]
    validate_run_inputs(chatbot_input, {"user_message": "hi", "session_id": "s"})
    with pytest.raises(InvalidInput, match="Missing required input field 'session_id'"):
        validate_run_inputs(chatbot_input, {"user_message": "hi"})
    with pytest.raises(InvalidInput, match="'message_history' must be array, got string"):
        validate_run_inputs(chatbot_input, {"user_message": "hi", "session_id": "s", "message_history": "x"})


def test_json_schema_wins_over_output_schema_and_type_lists_are_alternatives() -> None:
    schema = {"properties": {"x": {"type": ["integer", "null"]}, "y": {}}, "required": ["x", "z"]}
    n = input_node({"output_schema": {"ignored": "string"}, "output_json_schema": json.dumps(schema)})
    validate_run_inputs(n, {"x": None, "z": "anything"})
    with pytest.raises(InvalidInput, match="'x' must be integer or null, got string"):
        validate_run_inputs(n, {"x": "1", "z": 0})
    with pytest.raises(InvalidInput, match="Missing required input field 'z'"):
        validate_run_inputs(n, {"x": 1})


def test_python_type_annotations_in_output_schema_check_the_outer_type() -> None:
    n = input_node({"output_schema": {"history": "List[Dict[str, str]]", "blob": "bytes"}})
    validate_run_inputs(n, {"history": [], "blob": 5})
    with pytest.raises(InvalidInput, match="'history' must be array, got object"):
        validate_run_inputs(n, {"history": {}, "blob": 5})


# -- router ------------------------------------------------------------------------------------------

ROUTER_INPUT = {"input_node": {"n": 3, "name": "Alice", "tags": []}}


def test_router_sends_input_to_every_matching_route() -> None:
    r = router(
        {
            "small": {"conditions": [cond("input_node.n", "less_than", 5)]},
            "hasA": {"conditions": [cond("input_node.name", "contains", "A")]},
            "big": {"conditions": [cond("input_node.n", "greater_than", "10")]},
        }
    )
    out = evaluate_pure(r, ROUTER_INPUT)
    assert out == {"small": ROUTER_INPUT, "hasA": ROUTER_INPUT, "big": None}


def test_route_without_conditions_always_matches() -> None:
    assert evaluate_pure(router({"always": {"conditions": []}}), ROUTER_INPUT) == {"always": ROUTER_INPUT}


def test_router_folds_conditions_left_to_right() -> None:
    # (false OR true) AND false -> false; (false AND true) OR true -> true: no operator precedence.
    false, true = cond("input_node.n", "equals", 4), cond("input_node.n", "equals", 3)
    r = router(
        {
            "or_then_and": {
                "conditions": [false, {**true, "logicalOperator": "OR"}, {**false, "logicalOperator": "AND"}]
            },
            "and_then_or": {"conditions": [false, true, {**true, "logicalOperator": "OR"}]},
            "null_means_and": {"conditions": [true, {**false, "logicalOperator": None}]},
        }
    )
    assert evaluate_pure(r, ROUTER_INPUT) == {
        "or_then_and": None,
        "and_then_or": ROUTER_INPUT,
        "null_means_and": None,
    }


@pytest.mark.parametrize(
    ("operator", "variable", "value", "matches"),
    [
        ("equals", "input_node.n", "3", True),
        ("number_equals", "input_node.n", "3.0", True),
        ("equals", "input_node.n", "3.0", False),  # string comparison, as PySpur
        ("greater_than", "input_node.n", 2, True),
        ("less_than", "input_node.n", 2, False),
        ("starts_with", "input_node.name", "Al", True),
        ("not_starts_with", "input_node.name", "Al", False),
        ("is_empty", "input_node.tags", None, True),
        ("is_not_empty", "input_node.name", None, True),
        ("is_empty", "input_node.absent", None, True),  # a missing variable counts as None
        ("is_not_empty", "input_node.absent", None, False),
        ("equals", "input_node.absent", "None", False),
        ("greater_than", "input_node.name", 1, False),  # not a number: the condition is false
        ("less_than", "input_node.n", "abc", False),
        ("contains", "", "", False),  # a blank variable never matches (PySpur's default route)
    ],
)
def test_router_operators(operator: str, variable: str, value: Any, matches: bool) -> None:
    out = evaluate_pure(router({"r": {"conditions": [cond(variable, operator, value)]}}), ROUTER_INPUT)
    assert out is not None
    assert (out["r"] is not None) is matches


def test_route_payload_is_a_copy_per_route() -> None:
    out = evaluate_pure(router({"a": {"conditions": []}, "b": {"conditions": []}}), ROUTER_INPUT)
    assert out is not None
    out["a"]["input_node"]["n"] = 99
    assert out["b"]["input_node"]["n"] == 3
    assert ROUTER_INPUT["input_node"]["n"] == 3


def test_router_route_payload_picks_the_named_route() -> None:
    output = {"yes": {"input_node": {"n": 1}}, "no": None}
    assert nodes.router_route_payload(output, "yes") == {"input_node": {"n": 1}}
    assert nodes.router_route_payload(output, "no") is None
    with pytest.raises(NodeEvaluationError, match="no route 'maybe'"):
        nodes.router_route_payload(output, "maybe")


# -- coalesce, merge, static value -------------------------------------------------------------------


def test_coalesce_prefers_configured_order_then_input_order() -> None:
    inputs = {"A": None, "B": {"b": 1}, "C": {"c": 1}}
    assert evaluate_pure(node("CoalesceNode", {"preferences": ["C", "missing"]}), inputs) == {"c": 1}
    assert evaluate_pure(node("CoalesceNode"), inputs) == {"b": 1}


def test_coalesce_with_all_inputs_none_is_skipped() -> None:
    assert evaluate_pure(node("CoalesceNode"), {"A": None, "B": None}) is None


def test_merge_keys_outputs_by_title() -> None:
    assert evaluate_pure(node("MergeNode"), {"A": {"x": 1}, "B": {"y": 2}}) == {"A": {"x": 1}, "B": {"y": 2}}


def test_non_coalesce_node_with_a_none_input_is_skipped() -> None:
    assert evaluate_pure(node("MergeNode"), {"A": {"x": 1}, "B": None}) is None


def test_static_value_outputs_its_values_as_a_copy() -> None:
    n = node("StaticValueNode", {"values": {"k": [1]}})
    out = evaluate_pure(n, {"input_node": {}})
    assert out == {"k": [1]}
    out["k"].append(2)
    assert evaluate_pure(n, {"input_node": {}}) == {"k": [1]}


# -- output ------------------------------------------------------------------------------------------


def test_output_node_maps_dot_paths() -> None:
    config = {
        "output_map": {"a": "Py.result.inner", "b": "input_node.items.1", "c": "v1.2 draft.text", "d": "Py"}
    }
    inputs = {
        "Py": {"result": {"inner": None}},
        "input_node": {"items": ["x", "y"]},
        "v1.2 draft": {"text": "t"},
    }
    assert evaluate_pure(node("OutputNode", config), inputs) == {
        "a": None,
        "b": "y",
        "c": "t",
        "d": {"result": {"inner": None}},
    }


def test_output_node_with_empty_map_merges_inputs() -> None:
    assert evaluate_pure(node("OutputNode"), {"A": {"x": 1, "y": 1}, "B": {"y": 2}}) == {"x": 1, "y": 2}


def test_output_node_unresolvable_path_fails_clearly() -> None:
    n = node("OutputNode", {"output_map": {"answer": "Py.missing"}}, "out")
    with pytest.raises(NodeEvaluationError) as err:
        evaluate_pure(n, {"Py": {"result": 1}})
    assert (
        str(err.value)
        == "Node 'out' (OutputNode): output_map.answer = 'Py.missing' does not resolve (inputs: Py)"
    )


# -- evaluate_pure / input node guards ---------------------------------------------------------------


@pytest.mark.parametrize("node_type", ["InputNode", "PythonFuncNode", "HumanInterventionNode"])
def test_evaluate_pure_refuses_nodes_that_are_not_evaluated_inline(node_type: str) -> None:
    with pytest.raises(NodeEvaluationError, match="is not evaluated inline"):
        evaluate_pure(node(node_type, {"code": "return {}"}), {"A": {}})


def test_evaluate_pure_turns_a_bad_config_into_an_evaluation_error() -> None:
    with pytest.raises(NodeEvaluationError, match=r"config\.values: Field required"):
        evaluate_pure(node("StaticValueNode"), {"A": {}})


def test_input_node_output_is_the_payload_copied() -> None:
    payload = {"x": {"y": 1}}
    out = nodes.input_node_output(input_node({}), payload)
    assert out == payload
    out["x"]["y"] = 2
    assert payload["x"]["y"] == 1
    with pytest.raises(NodeEvaluationError):
        nodes.input_node_output(node("OutputNode"), payload)
