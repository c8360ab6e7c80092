"""The shared benchmark workflow: input_node -> py1 (PythonFuncNode) -> output_node.

The definition is PySpur's ``WorkflowDefinitionSchema`` JSON, used unchanged by PySpur and by our service.
"""

from __future__ import annotations

import json
from typing import Any

PY1_CODE = 'return {"y": input_model.input_node.x * 2}'

INPUT_JSON_SCHEMA = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}


def workflow_definition() -> dict[str, Any]:
    """Return a fresh copy of the benchmark workflow definition."""
    return {
        "nodes": [
            {
                "id": "input_node",
                "title": "input_node",
                "node_type": "InputNode",
                "config": {
                    "output_schema": {"x": "integer"},
                    "output_json_schema": json.dumps(INPUT_JSON_SCHEMA),
                },
                "coordinates": {"x": 0.0, "y": 0.0},
            },
            {
                "id": "py1",
                "title": "py1",
                "node_type": "PythonFuncNode",
                "config": {"code": PY1_CODE, "output_schema": {"y": "integer"}},
                "coordinates": {"x": 300.0, "y": 0.0},
            },
            {
                "id": "output_node",
                "title": "output_node",
                "node_type": "OutputNode",
                "config": {"output_schema": {"y": "integer"}, "output_map": {"y": "py1.y"}},
                "coordinates": {"x": 600.0, "y": 0.0},
            },
        ],
        "links": [
            {"source_id": "input_node", "target_id": "py1"},
            {"source_id": "py1", "target_id": "output_node"},
        ],
        "test_inputs": [],
        "spur_type": "workflow",
    }


def workflow_create_body(name: str = "bench-double") -> dict[str, Any]:
    """Body for ``POST /api/wf/`` (PySpur) or our equivalent create endpoint."""
    return {"name": name, "description": "benchmark: y = 2x", "definition": workflow_definition()}


def run_body(x: int) -> dict[str, Any]:
    """Body for ``POST /wf/{id}/run/``."""
    return {"initial_inputs": {"input_node": {"x": x}}}


def check_run_response(payload: Any, x: int) -> None:
    """Raise ``ValueError`` unless a blocking ``/run/`` response (``{node_id: outputs}``) has y == 2x."""
    if not isinstance(payload, dict):
        raise ValueError(f"run response is not an object: {payload!r}")
    out = payload.get("output_node")
    if not isinstance(out, dict) or out.get("y") != 2 * x:
        raise ValueError(f"expected output_node.y == {2 * x}, got {payload!r}")
