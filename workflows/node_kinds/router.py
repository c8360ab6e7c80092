"""RouterNode: sends its input down every route whose conditions hold; the other routes get nothing."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from workflows.definition import WorkflowNode
from workflows.node_configs import RouteCondition, RouteMapValue, RouterNodeConfig
from workflows.node_kinds.base import NodeHandler, NodeKind, NodeOutput, object_schema
from workflows.node_kinds.fields import MISSING, NodeEvaluationError, lookup


class RouterHandler(NodeHandler[RouterNodeConfig]):
    node_type = "RouterNode"
    display_name = "Router"
    group = "Logic"
    kind = NodeKind.PURE
    config_model = RouterNodeConfig
    acronym = "RN"
    color = "#FF7F50"
    input_schema = object_schema("RouterNodeInput", "Input model for the router node.")
    output_schema = {}  # PySpur sets no output model for it
    routes = True

    def route_names(self, node: WorkflowNode) -> set[str]:
        route_map = node.config.get("route_map")
        return set(route_map) if isinstance(route_map, dict) else set()

    def evaluate(self, node: WorkflowNode, config: RouterNodeConfig, inputs: dict[str, Any]) -> NodeOutput:
        # Every matching route fires (PySpur's multi-fire); each gets the router's whole input.
        return {
            name: copy.deepcopy(inputs) if _route_matches(inputs, route) else None
            for name, route in config.route_map.items()
        }

    def route_payload(self, output: Mapping[str, Any], source_handle: str) -> dict[str, Any] | None:
        return router_route_payload(output, source_handle)


def router_route_payload(router_output: Mapping[str, Any], source_handle: str) -> dict[str, Any] | None:
    """What a router sends down the link named `source_handle`: the route's payload, or None if not taken.

    Raises:
        NodeEvaluationError: the router has no such route (definition validation should prevent it).
    """
    if source_handle not in router_output:
        raise NodeEvaluationError(
            f"Router output has no route '{source_handle}' (routes: {', '.join(router_output) or 'none'})"
        )
    payload = router_output[source_handle]
    return None if payload is None else dict(payload)


def _condition_holds(data: dict[str, Any], cond: RouteCondition) -> bool:
    # PySpur's semantics: a blank variable never matches; a missing value only satisfies is_empty;
    # values that cannot be compared make the condition false rather than failing the node.
    if not cond.variable:
        return False
    found = lookup(data, cond.variable)
    value = None if found is MISSING else found
    if value is None:
        return cond.operator == "is_empty"
    op, target = cond.operator, cond.value
    try:
        if op == "contains":
            return str(target) in str(value)
        if op == "equals":
            return str(value) == str(target)
        if op == "starts_with":
            return str(value).startswith(str(target))
        if op == "not_starts_with":
            return not str(value).startswith(str(target))
        if op == "is_empty":
            return not value
        if op == "is_not_empty":
            return bool(value)
        left, right = float(value), float(target)
    except (TypeError, ValueError, OverflowError):
        return False
    if op == "number_equals":
        return left == right
    if op == "greater_than":
        return left > right
    return left < right  # less_than, the last operator


def _route_matches(data: dict[str, Any], route: RouteMapValue) -> bool:
    if not route.conditions:
        return True
    result = _condition_holds(data, route.conditions[0])
    for cond in route.conditions[1:]:
        # Folded left to right without precedence, as PySpur does; a null operator means AND.
        holds = _condition_holds(data, cond)
        result = (result or holds) if cond.logicalOperator == "OR" else (result and holds)
    return result
