"""How a dataset row becomes a batch row's run input (pure: no server)."""

from __future__ import annotations

from typing import Any

import pytest

from errors import InvalidInput
from tests.builders import input_node
from workflows.batch_workflow import row_payload, row_run_id
from workflows.definition import WorkflowNode


def node(fields: dict[str, str], required: list[str] | None = None) -> WorkflowNode:
    return WorkflowNode.model_validate(input_node(fields, required=required))


def test_csv_text_becomes_the_declared_type_and_undeclared_columns_are_left_out() -> None:
    inputs = node({"n": "integer", "f": "number", "ok": "boolean", "s": "string"})
    row: dict[str, Any] = {"n": " 7 ", "f": "2.5", "ok": "True", "s": "007", "extra": "x"}
    assert row_payload(inputs, row) == {"n": 7, "f": 2.5, "ok": True, "s": "007"}


def test_an_empty_cell_leaves_an_optional_number_out_but_a_required_one_fails() -> None:
    assert row_payload(node({"n": "integer", "s": "string"}, required=["s"]), {"n": "", "s": ""}) == {"s": ""}
    with pytest.raises(InvalidInput, match="Missing required input field 'n'"):
        row_payload(node({"n": "integer"}), {"n": ""})


def test_json_text_cells_become_lists_and_objects_unless_the_execution_predates_it() -> None:
    inputs = node({"tags": "array", "meta": "object"})
    row = {"tags": '["a", "b"]', "meta": '{"k": 1}'}
    assert row_payload(inputs, row) == {"tags": ["a", "b"], "meta": {"k": 1}}
    with pytest.raises(InvalidInput, match="'tags' must be array, got string"):
        row_payload(inputs, row, json_text=False)


def test_an_input_node_without_declared_fields_takes_the_whole_row() -> None:
    assert row_payload(node({}), {"a": "1", "b": 2}) == {"a": "1", "b": 2}


def test_row_run_ids_are_stable_per_parent_and_row() -> None:
    parent = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    assert row_run_id(parent, 3) == row_run_id(parent, 3)
    assert row_run_id(parent, 3) != row_run_id(parent, 4)
