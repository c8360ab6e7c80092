"""Small typed builders for workflow definitions used across tests."""

from __future__ import annotations

import json
from typing import Any


def input_node(
    fields: dict[str, str] | None = None, node_id: str = "input_node", required: list[str] | None = None
) -> dict[str, Any]:
    fields = fields if fields is not None else {"x": "integer"}
    schema: dict[str, Any] = {"type": "object", "properties": {k: {"type": v} for k, v in fields.items()}}
    if required is not None:
        schema["required"] = required
    return {
        "id": node_id,
        "title": node_id,
        "node_type": "InputNode",
        "config": {"output_schema": fields, "output_json_schema": json.dumps(schema)},
    }


def python_node(
    node_id: str, code: str, output_schema: dict[str, str] | None = None, **config: Any
) -> dict[str, Any]:
    return {
        "id": node_id,
        "title": node_id,
        "node_type": "PythonFuncNode",
        "config": {"code": code, "output_schema": output_schema or {}, **config},
    }


def output_node(output_map: dict[str, str], node_id: str = "output_node") -> dict[str, Any]:
    return {
        "id": node_id,
        "title": node_id,
        "node_type": "OutputNode",
        "config": {"output_map": output_map, "output_schema": dict.fromkeys(output_map, "any")},
    }


def node(node_id: str, node_type: str, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "title": node_id, "node_type": node_type, "config": config}


def link(source: str, target: str, handle: str | None = None) -> dict[str, Any]:
    return {"source_id": source, "target_id": target, "source_handle": handle}


def definition(nodes: list[dict[str, Any]], links: list[dict[str, Any]]) -> dict[str, Any]:
    return {"nodes": nodes, "links": links}


def double_graph(code: str = 'return {"y": input_model.input_node.x * 2}') -> dict[str, Any]:
    """input -> PythonFunc (y = 2x) -> output; the benchmark's graph."""
    return definition(
        [input_node(), python_node("py1", code, {"y": "integer"}), output_node({"y": "py1.y"})],
        [link("input_node", "py1"), link("py1", "output_node")],
    )


def agent_node(node_id: str = "agent", **config: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "llm_info": {"model": "openai/gpt-4o", "max_tokens": 256, "temperature": 0.2},
        "system_message": "You answer with tools.",
        "user_message": "Question: {{input_node.question}}",
        "max_attempts": 2,
    }
    base.update(config)
    return {"id": node_id, "title": "Agent", "node_type": "AgentNode", "config": base}


def tool_node(
    node_id: str, code: str, input_schema: dict[str, str], parent: str = "agent", **config: Any
) -> dict[str, Any]:
    """A Python tool of an agent: a child node whose arguments are its input (`input_model.<arg>`)."""
    tool = python_node(node_id, code, {"result": "any"}, input_schema=input_schema, **config)
    return {**tool, "parent_id": parent}


def agent_graph(tools: list[dict[str, Any]], **config: Any) -> dict[str, Any]:
    """input -> AgentNode (with these tools as children) -> output {answer, calls}."""
    return definition(
        [
            input_node({"question": "string"}),
            agent_node(**config),
            *tools,
            output_node({"answer": "Agent.output", "calls": "Agent.tool_calls"}),
        ],
        [link("input_node", "agent"), link("agent", "output_node")],
    )
