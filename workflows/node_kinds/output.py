"""OutputNode: maps its inputs' fields (dot paths) to the fields of the run's result."""

from __future__ import annotations

from typing import Any

from errors import InvalidDefinition
from workflows.definition import WorkflowNode
from workflows.node_configs import OutputNodeConfig
from workflows.node_kinds.base import NodeHandler, NodeKind, NodeOutput, object_schema
from workflows.node_kinds.fields import MISSING, NodeEvaluationError, lookup

_BASE_INPUT_DOC = (
    "Base class for node inputs.\n\nEach node's input model will be dynamically created based on its "
    "predecessor nodes,\nwith fields named after node IDs and types being the corresponding NodeOutputModels."
)
_BASE_OUTPUT_DOC = "Base class for all node outputs.\n\nEach node type will define its own output model that inherits from this."


class OutputHandler(NodeHandler[OutputNodeConfig]):
    node_type = "OutputNode"
    display_name = "Output"
    group = "Input/Output"
    kind = NodeKind.PURE
    config_model = OutputNodeConfig
    acronym = "ON"
    color = "#17A2B8"
    input_schema = object_schema("BaseNodeInput", _BASE_INPUT_DOC)
    output_schema = object_schema("BaseNodeOutput", _BASE_OUTPUT_DOC)
    is_output = True

    def check(self, node: WorkflowNode, config: OutputNodeConfig) -> None:
        for out_field, path in config.output_map.items():
            if not path.strip():
                raise InvalidDefinition(
                    f"Node '{node.id}' (OutputNode): config.output_map.{out_field} is empty"
                )

    def evaluate(self, node: WorkflowNode, config: OutputNodeConfig, inputs: dict[str, Any]) -> NodeOutput:
        if not config.output_map:
            # PySpur fails here (defect 15); pass the inputs' fields through instead, later inputs winning.
            merged: dict[str, Any] = {}
            for output in inputs.values():
                if isinstance(output, dict):
                    merged.update(output)
            return merged
        result: dict[str, Any] = {}
        for out_field, path in config.output_map.items():
            value = lookup(inputs, path)
            if value is MISSING:
                raise NodeEvaluationError(
                    f"Node '{node.id}' (OutputNode): output_map.{out_field} = '{path}' does not resolve "
                    f"(inputs: {', '.join(inputs) or 'none'})"
                )
            result[out_field] = value
        return result
