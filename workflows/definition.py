"""PySpur's `WorkflowDefinitionSchema` wire format, as pydantic models; no I/O, safe inside workflow code."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SpurType(StrEnum):
    WORKFLOW = "workflow"
    CHATBOT = "chatbot"
    AGENT = "agent"


class NodeCoordinates(BaseModel):
    x: float
    y: float


class NodeDimensions(BaseModel):
    width: float
    height: float


class WorkflowNode(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=200)
    title: str = ""
    parent_id: str | None = None
    node_type: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)
    coordinates: NodeCoordinates | None = None
    dimensions: NodeDimensions | None = None
    subworkflow: WorkflowDefinition | None = None

    @model_validator(mode="after")
    def _title_defaults_to_id(self) -> WorkflowNode:
        # PySpur keys node inputs by title; a blank title would collide, so it falls back to the id.
        if not self.title.strip():
            self.title = self.id
        return self


class WorkflowLink(BaseModel):
    model_config = ConfigDict(extra="ignore")

    source_id: str
    target_id: str
    source_handle: str | None = None
    target_handle: str | None = None


class WorkflowDefinition(BaseModel):
    model_config = ConfigDict(extra="ignore")

    nodes: list[WorkflowNode]
    links: list[WorkflowLink]
    test_inputs: list[dict[str, Any]] = Field(default_factory=list)
    spur_type: SpurType = SpurType.WORKFLOW

    @model_validator(mode="after")
    def _normalise_router_handles(self) -> WorkflowDefinition:
        # PySpur rewrites router link target handles to "<router id>.<route>" on every validation.
        routers = {n.id for n in self.nodes if n.node_type == "RouterNode"}
        for link in self.links:
            if link.source_id in routers:
                last = (link.target_handle or link.source_id).split(".")[-1]
                link.target_handle = f"{link.source_id}.{last}"
        return self

    def node(self, node_id: str) -> WorkflowNode:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)


WorkflowNode.model_rebuild()


DEFAULT_INPUT_JSON_SCHEMA = '{"type": "object", "properties": {"input_1": {"type": "string"} } }'


def default_definition() -> WorkflowDefinition:
    """The definition PySpur gives a new workflow (and `reset`)."""
    return WorkflowDefinition.model_validate(
        {
            "nodes": [
                {
                    "id": "input_node",
                    "title": "input_node",
                    "node_type": "InputNode",
                    "coordinates": {"x": 100, "y": 100},
                    "config": {
                        "output_schema": {"input_1": "string"},
                        "output_json_schema": DEFAULT_INPUT_JSON_SCHEMA,
                        "has_fixed_output": False,
                        "enforce_schema": False,
                    },
                }
            ],
            "links": [],
            "test_inputs": [],
            "spur_type": "workflow",
        }
    )


def chatbot_definition() -> WorkflowDefinition:
    """The definition PySpur gives a new chatbot spur."""
    input_schema = {
        "type": "object",
        "properties": {
            "user_message": {"type": "string"},
            "session_id": {"type": "string"},
            "message_history": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"role": {"type": "string"}, "content": {"type": "string"}},
                    "required": ["role", "content"],
                },
            },
        },
        "required": ["user_message", "session_id"],
    }
    output_schema = {
        "type": "object",
        "properties": {"assistant_message": {"type": "string"}},
        "required": ["assistant_message"],
    }

    return WorkflowDefinition.model_validate(
        {
            "nodes": [
                {
                    "id": "input_node",
                    "title": "input_node",
                    "node_type": "InputNode",
                    "coordinates": {"x": 100, "y": 100},
                    "config": {
                        "output_schema": {
                            "user_message": "string",
                            "session_id": "string",
                            "message_history": "List[Dict[str, str]]",
                        },
                        "output_json_schema": json.dumps(input_schema),
                        "has_fixed_output": False,
                        "enforce_schema": False,
                    },
                },
                {
                    "id": "output_node",
                    "title": "output_node",
                    "node_type": "OutputNode",
                    "coordinates": {"x": 300, "y": 100},
                    "config": {
                        "output_schema": {"assistant_message": "string"},
                        "output_json_schema": json.dumps(output_schema),
                        "output_map": {},
                        "has_fixed_output": False,
                    },
                },
            ],
            "links": [],
            "test_inputs": [],
            "spur_type": "chatbot",
        }
    )
