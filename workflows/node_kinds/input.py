"""InputNode: the graph's entry; its output is the run's (already validated) input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.definition import WorkflowNode
from workflows.node_configs import InputNodeConfig
from workflows.node_kinds.base import NodeHandler, NodeKind, NodeOutput, copied, object_schema
from workflows.node_kinds.fields import declared_input_fields


class InputHandler(NodeHandler[InputNodeConfig]):
    node_type = "InputNode"
    display_name = "Input"
    group = "Input/Output"
    kind = NodeKind.PURE
    config_model = InputNodeConfig
    acronym = "IN"
    color = "#6F42C1"
    input_schema = object_schema("InputNodeInput")
    output_schema = object_schema("InputNodeOutput")
    is_input = True

    def check(self, node: WorkflowNode, config: InputNodeConfig) -> None:
        declared_input_fields(node)

    def output(self, payload: Mapping[str, Any]) -> NodeOutput:
        """The node's output: the run's input, copied."""
        return copied(payload)
