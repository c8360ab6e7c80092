"""Run inputs as PySpur's editor sends them: text converted to the InputNode's declared types,
blank cells absent, and what cannot convert named (pure: no server)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from errors import InvalidInput
from tests.builders import input_node
from workflows.definition import WorkflowNode
from workflows.nodes import convert_run_inputs, validate_run_inputs


def entry(fields: dict[str, Any], required: list[str] | None = None) -> WorkflowNode:
    return WorkflowNode.model_validate(input_node(fields, required=required))


def typed(node: WorkflowNode, payload: dict[str, Any]) -> dict[str, Any]:
    return validate_run_inputs(node, convert_run_inputs(node, payload))


@pytest.mark.parametrize(
    ("declared", "text", "value"),
    [
        ("integer", "21", 21),
        ("integer", " -3 ", -3),
        ("integer", "4.0", 4),
        ("number", "2.5", 2.5),
        ("number", "7", 7),
        ("boolean", "true", True),
        ("boolean", "False", False),
        ("array", '[1, "a"]', [1, "a"]),
        ("object", '{"k": {"n": 1}}', {"k": {"n": 1}}),
        ("string", "21", "21"),
        ("string", "", ""),
    ],
)
def test_text_converts_to_the_declared_type(declared: str, text: str, value: Any) -> None:
    assert typed(entry({"f": declared}), {"f": text}) == {"f": value}


@pytest.mark.parametrize(
    ("declared", "text"),
    [("integer", "abc"), ("integer", "2.5"), ("number", "NaN"), ("boolean", "maybe"), ("array", '{"a": 1}')],
)
def test_text_that_cannot_convert_is_refused_naming_the_field(declared: str, text: str) -> None:
    with pytest.raises(InvalidInput, match=f"Input field 'f' must be {declared}, got string"):
        typed(entry({"f": declared}), {"f": text})


def test_a_blank_cell_counts_as_absent() -> None:
    node = entry({"n": "integer", "m": "integer"}, required=["m"])
    assert typed(node, {"n": "  ", "m": "1"}) == {"m": 1}
    with pytest.raises(InvalidInput, match="Missing required input field 'm'"):
        typed(node, {"m": ""})


def test_type_alternatives_convert_to_the_first_that_fits() -> None:
    schema = {"properties": {"x": {"type": ["integer", "null"]}, "y": {"type": ["boolean", "string"]}}}
    node = WorkflowNode.model_validate(
        {"id": "input_node", "node_type": "InputNode", "config": {"output_json_schema": json.dumps(schema)}}
    )
    assert typed(node, {"x": "null", "y": "true"}) == {"x": None, "y": "true"}
    assert typed(node, {"x": "5", "y": "no"}) == {"x": 5, "y": "no"}


def test_values_already_typed_and_undeclared_fields_pass_through() -> None:
    assert typed(entry({"n": "integer"}), {"n": 3, "extra": "7"}) == {"n": 3, "extra": "7"}
