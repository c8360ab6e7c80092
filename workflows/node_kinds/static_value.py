"""StaticValueNode: outputs the constant values of its config."""

from __future__ import annotations

import copy
from typing import Any

from workflows.definition import WorkflowNode
from workflows.node_configs import StaticValueNodeConfig
from workflows.node_kinds.base import NodeHandler, NodeKind, NodeOutput, object_schema


class StaticValueHandler(NodeHandler[StaticValueNodeConfig]):
    node_type = "StaticValueNode"
    display_name = "Static Value"
    group = "Logic"
    kind = NodeKind.PURE
    config_model = StaticValueNodeConfig
    acronym = "CVN"
    color = "#20C997"
    input_schema = object_schema("StaticValueNodeInput")
    output_schema = object_schema("StaticValueNodeOutput")

    def evaluate(
        self, node: WorkflowNode, config: StaticValueNodeConfig, inputs: dict[str, Any]
    ) -> NodeOutput:
        return copy.deepcopy(config.values)
