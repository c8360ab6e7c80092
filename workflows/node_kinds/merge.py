"""MergeNode: outputs all its inputs, keyed by predecessor title."""

from __future__ import annotations

from typing import Any

from workflows.definition import WorkflowNode
from workflows.node_configs import MergeNodeConfig
from workflows.node_kinds.base import NodeHandler, NodeKind, NodeOutput, object_schema


class MergeHandler(NodeHandler[MergeNodeConfig]):
    node_type = "MergeNode"
    display_name = "Merge"
    group = "Logic"
    kind = NodeKind.PURE
    config_model = MergeNodeConfig
    acronym = "MN"
    color = "#6F42C1"
    # PySpur's MergeNode sets no output model, so PySpur answers `{}` for it.
    input_schema = object_schema("MergeNodeInput")
    output_schema = {}

    def evaluate(self, node: WorkflowNode, config: MergeNodeConfig, inputs: dict[str, Any]) -> NodeOutput:
        return inputs
