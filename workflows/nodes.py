"""The catalogue of node kinds: one handler per kind (`workflows.node_kinds`), registered below in
PySpur's order, and the questions asked of a node through it (its config, its checks, its pure
evaluation, the `GET /node/supported_types/` body).

Imported by workflow code, so it is deterministic and does no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from errors import InvalidDefinition
from workflows.definition import WorkflowNode
from workflows.node_configs import NodeConfig
from workflows.node_kinds.agent import AgentHandler
from workflows.node_kinds.base import NodeHandler, NodeKind, NodeOutput
from workflows.node_kinds.best_of_n import BestOfNHandler
from workflows.node_kinds.coalesce import CoalesceHandler
from workflows.node_kinds.fields import NodeEvaluationError as NodeEvaluationError
from workflows.node_kinds.fields import check_config_types
from workflows.node_kinds.fields import convert_run_inputs as convert_run_inputs
from workflows.node_kinds.fields import declared_input_fields as declared_input_fields
from workflows.node_kinds.fields import map_inputs as map_inputs
from workflows.node_kinds.fields import merged_fields as merged_fields
from workflows.node_kinds.fields import validate_run_inputs as validate_run_inputs
from workflows.node_kinds.for_loop import ForLoopHandler
from workflows.node_kinds.human_intervention import HumanInterventionHandler
from workflows.node_kinds.input import InputHandler
from workflows.node_kinds.merge import MergeHandler
from workflows.node_kinds.output import OutputHandler
from workflows.node_kinds.python_func import PythonFuncHandler
from workflows.node_kinds.router import RouterHandler
from workflows.node_kinds.router import router_route_payload as router_route_payload
from workflows.node_kinds.single_llm_call import SingleLLMCallHandler
from workflows.node_kinds.static_value import StaticValueHandler
from workflows.node_kinds.subworkflow import SubworkflowHandler

# In PySpur's order: `supported_types` lists groups, and kinds within a group, as they come here.
HANDLERS: tuple[NodeHandler[Any], ...] = (
    InputHandler(),
    OutputHandler(),
    SingleLLMCallHandler(),
    AgentHandler(),
    BestOfNHandler(),
    PythonFuncHandler(),
    RouterHandler(),
    CoalesceHandler(),
    MergeHandler(),
    StaticValueHandler(),
    HumanInterventionHandler(),
    SubworkflowHandler(),
    ForLoopHandler(),
)

NODE_CATALOGUE: dict[str, NodeHandler[Any]] = {h.node_type: h for h in HANDLERS}

# What the service can run; a catalogue entry outside this set is shown but refused on save.
NODE_TYPES_IMPLEMENTED: frozenset[str] = frozenset(h.node_type for h in HANDLERS if h.implemented)


class _UnknownKind(NodeHandler[NodeConfig]):
    """Answers role questions about a type outside the catalogue: it has none."""

    node_type = ""
    kind = NodeKind.PURE
    config_model = NodeConfig


_UNKNOWN = _UnknownKind()


def kind_of(node_type: str | None) -> NodeHandler[Any]:
    """The handler of a node type, for role questions (a type outside the catalogue has no role)."""
    return NODE_CATALOGUE.get(node_type or "", _UNKNOWN)


def handler(node: WorkflowNode) -> NodeHandler[Any]:
    """The handler of the node's type.

    Raises:
        InvalidDefinition: the type is not in the catalogue.
    """
    found = NODE_CATALOGUE.get(node.node_type)
    if found is None:
        raise InvalidDefinition(f"Node '{node.id}' has unknown node type '{node.node_type}'")
    return found


def parse_config(node: WorkflowNode) -> NodeConfig:
    """The node's config as its type's model (any catalogue type, runnable or not).

    Raises:
        InvalidDefinition: the type is not in the catalogue, or the config does not fit its model.
    """
    config: NodeConfig = handler(node).config(node)
    return config


def check_node_shape(node: WorkflowNode) -> None:
    """What a saved node must be, even in a draft: an id that is not reserved, a catalogue type, and
    config values of the right JSON types where they are given.

    Raises:
        InvalidDefinition: naming the node id and the fault.
    """
    # `_row`, `_run_id`, `_error` are reserved keys of batch output lines, which are keyed by node id.
    if node.id.startswith("_"):
        raise InvalidDefinition(f"Node id '{node.id}' may not start with '_' (reserved)")
    check_config_types(node, handler(node).config_model)


def node_problem(node: WorkflowNode) -> str | None:
    """What keeps a node of a catalogue type from running (a draft may hold it): a type this service
    cannot run, a config that does not fit its kind (the editor leaves `null` where a field has no
    default), or a check of its kind; None when it can run."""
    if node.node_type not in NODE_CATALOGUE:
        return f"Node '{node.id}' has unknown node type '{node.node_type}'"
    if node.node_type not in NODE_TYPES_IMPLEMENTED:
        return f"Node '{node.id}' has node type '{node.node_type}', which this service cannot run yet"
    kind = handler(node)
    try:
        kind.check(node, kind.config(node))
    except InvalidDefinition as err:
        return err.detail
    return None


def validate_node(node: WorkflowNode) -> None:
    """Check one node on its own: id, runnable type, config and the checks of its kind.

    Raises:
        InvalidDefinition: naming the node id and the fault.
    """
    check_node_shape(node)
    problem = node_problem(node)
    if problem is not None:
        raise InvalidDefinition(problem)


def input_node_output(node: WorkflowNode, payload: Mapping[str, Any]) -> NodeOutput:
    """An InputNode's output: the run's (already validated) initial input, copied.

    Raises:
        NodeEvaluationError: the node is not the graph's entry.
    """
    kind = kind_of(node.node_type)
    if not isinstance(kind, InputHandler):
        raise NodeEvaluationError(f"Node '{node.id}' is a {node.node_type}, not an InputNode")
    return kind.output(payload)


def evaluate_pure(node: WorkflowNode, inputs: dict[str, Any]) -> NodeOutput | None:
    """Evaluate a PURE node on `{predecessor title: output}`.

    Returns None when the node is skipped: a kind that takes partial inputs (Coalesce) whose inputs
    are all None, or any other node with a None input (an untaken branch upstream).

    Raises:
        NodeEvaluationError: any fault (a kind not evaluated inline, bad config, an output path that
            does not resolve), so that workflow code fails the node rather than the workflow task.
    """
    try:
        kind = handler(node)
        config = kind.config(node)
    except InvalidDefinition as err:
        raise NodeEvaluationError(err.detail) from None
    if not kind.takes_partial_inputs:
        if any(output is None for output in inputs.values()):
            return None
        inputs = copy.deepcopy(inputs)  # outputs must not alias upstream outputs
    return kind.evaluate(node, config, inputs)


def supported_types() -> dict[str, list[dict[str, Any]]]:
    """The body of `GET /node/supported_types/`, in PySpur's shape and group order (a fresh copy)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for kind in HANDLERS:
        config = kind.config_model.model_json_schema()
        config["title"] = kind.display_name
        groups.setdefault(kind.group, []).append(
            {
                "name": kind.node_type,
                "input": copy.deepcopy(kind.input_schema),
                "output": copy.deepcopy(kind.output_schema),
                "config": config,
                "visual_tag": {"acronym": kind.acronym, "color": kind.color},
                "has_fixed_output": kind.config_model.model_fields["has_fixed_output"].default,
                **kind.catalogue_extra(),
            }
        )
    return groups
