"""CoalesceNode: outputs the first input that arrived, by preferred title first, then in input order."""

from __future__ import annotations

from typing import Any

from workflows.definition import WorkflowNode
from workflows.node_configs import CoalesceNodeConfig
from workflows.node_kinds.base import NodeHandler, NodeKind, NodeOutput, copied, object_schema


class CoalesceHandler(NodeHandler[CoalesceNodeConfig]):
    node_type = "CoalesceNode"
    display_name = "Coalesce"
    group = "Logic"
    kind = NodeKind.PURE
    config_model = CoalesceNodeConfig
    acronym = "CN"
    color = "#28A745"
    input_schema = object_schema("CoalesceNodeInput", "Input model for the coalesce node.")
    output_schema = {}  # PySpur sets no output model for it
    takes_partial_inputs = True

    def evaluate(
        self, node: WorkflowNode, config: CoalesceNodeConfig, inputs: dict[str, Any]
    ) -> NodeOutput | None:
        for title in [*config.preferences, *inputs]:
            if inputs.get(title) is not None:
                return copied(inputs[title])
        return None
