"""Node types: config models, the catalogue (group, display name, kind, visual tag) and its JSON form.

Deterministic and free of I/O (stdlib, pydantic and the definition models only), because workflow code
imports it. `workflows.nodes` holds the behaviour (validation, evaluation) and re-exports
`supported_types` and `NODE_TYPES_IMPLEMENTED`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workflows.definition import DEFAULT_INPUT_JSON_SCHEMA

# PySpur's BaseNodeConfig defaults; kept so a config that omits them means what it meant in PySpur.
_PYSPUR_OUTPUT_SCHEMA = {"output": "string"}
_PYSPUR_OUTPUT_JSON_SCHEMA = '{"type": "object", "properties": {"output": {"type": "string"} } }'

_PYTHON_CODE_TEMPLATE = "\n".join(
    [
        "# Write your Python code here.",
        '# The input data is available as "input_model" pydantic model.',
        "# Return a dictionary of variables that you would like to see in the node output.",
    ]
)


# Class docstrings below become the config schema's `description` in the catalogue: keep them for users.
class NodeConfig(BaseModel):
    """Configuration common to every node."""

    # UI-only keys (title, ...) must survive a round trip, so unknown keys are kept.
    model_config = ConfigDict(extra="allow")

    output_schema: dict[str, str] = Field(default=_PYSPUR_OUTPUT_SCHEMA, title="Output schema")
    output_json_schema: str | None = Field(default=_PYSPUR_OUTPUT_JSON_SCHEMA, title="Output JSON schema")
    has_fixed_output: bool = False

    @field_validator("output_json_schema", mode="before")
    @classmethod
    def _schema_object_as_text(cls, value: Any) -> Any:
        # PySpur's editor sometimes holds the schema as an object rather than a string; accept both.
        if isinstance(value, dict):
            return json.dumps(value)
        return value


class InputNodeConfig(NodeConfig):
    """The workflow's entry: its output is the run's input, checked against the declared fields."""

    # No declared fields means "accept any object" (product rule), so absent keys default to empty.
    # The `json_schema_extra` defaults are what the editor pre-fills for a new node (PySpur's).
    output_schema: dict[str, str] = Field(
        default_factory=dict, json_schema_extra={"default": {"input_1": "string"}}
    )
    output_json_schema: str | None = Field(
        default=None, json_schema_extra={"default": DEFAULT_INPUT_JSON_SCHEMA}
    )
    enforce_schema: bool = False


class OutputNodeConfig(NodeConfig):
    """Maps input fields (dot paths, starting with a predecessor's title) to output fields."""

    output_map: dict[str, str] = Field(
        default_factory=dict,
        title="Output Map",
        description="Output field name -> dot path into the inputs, starting with a predecessor's title.",
    )


class StaticValueNodeConfig(NodeConfig):
    """Outputs the constant values given here."""

    values: dict[str, Any]


class PythonFuncNodeConfig(NodeConfig):
    """The body of `def user_function(input_model):`, returning a dict; runs in a sandbox."""

    # Limit overrides can only lower the server's sandbox limits: the activity takes the minimum.
    code: str = Field(json_schema_extra={"default": _PYTHON_CODE_TEMPLATE})
    wall_seconds: float | None = Field(default=None, gt=0)
    cpu_seconds: float | None = Field(default=None, gt=0)
    memory_mb: int | None = Field(default=None, gt=0)
    output_bytes: int | None = Field(default=None, gt=0)


RouterOperator = Literal[
    "contains",
    "equals",
    "number_equals",
    "greater_than",
    "less_than",
    "starts_with",
    "not_starts_with",
    "is_empty",
    "is_not_empty",
]


class RouteCondition(BaseModel):
    model_config = ConfigDict(extra="allow")

    variable: str
    operator: RouterOperator = "contains"
    value: Any = None
    # PySpur types this Optional, so stored definitions may carry null; null folds as AND.
    logicalOperator: Literal["AND", "OR"] | None = "AND"


class RouteMapValue(BaseModel):
    model_config = ConfigDict(extra="allow")

    conditions: list[RouteCondition]


class RouterNodeConfig(NodeConfig):
    """Sends its input to every route whose conditions hold; the other routes get nothing."""

    # PySpur's default route; pydantic copies mutable defaults per instance.
    route_map: dict[str, RouteMapValue] = {
        "route1": RouteMapValue(conditions=[RouteCondition(variable="", operator="contains", value="")])
    }


class CoalesceNodeConfig(NodeConfig):
    """Outputs the first input that arrived, by preferred title first, then in input order."""

    preferences: list[str] = []


class MergeNodeConfig(NodeConfig):
    """Outputs all inputs, keyed by predecessor title."""


class HumanInterventionNodeConfig(NodeConfig):
    """Pauses its downstream until a person approves, declines or overrides."""

    message: str = "Human intervention required"
    block_only_dependent_nodes: bool = True
    timeout_seconds: int | None = Field(default=None, gt=0, le=10 * 365 * 24 * 3600)
    on_timeout: Literal["approve", "decline", "fail"] = "fail"
    continue_on_decline: bool = False


MAX_LOOP_ITERATIONS = 1000


class ForLoopNodeConfig(NodeConfig):
    """Runs its body (the nodes whose parent_id is this node) `num_iterations` times.

    Each iteration's input is the mapped input plus `loop_history` (`{body node id: [outputs of
    earlier iterations]}`); the body's OutputNode result is merged into the input of the next one."""

    num_iterations: int = Field(default=1, ge=1, le=MAX_LOOP_ITERATIONS, title="Number of iterations")
    input_map: dict[str, str] | None = Field(
        default=None,
        title="Input map",
        description="Body input field -> dot path into this node's inputs; empty passes all inputs.",
    )
    # PySpur's editor sends `{nodes: [], links: []}` and puts the body in child nodes; both are accepted.
    subworkflow: dict[str, Any] | None = None


class SubworkflowNodeConfig(NodeConfig):
    """Runs another stored workflow of the same tenant as a child run; outputs its OutputNode's result."""

    workflow_id: str = Field(title="Workflow", description="Id of the stored workflow to run")
    input_map: dict[str, str] | None = Field(
        default=None,
        title="Input map",
        description="Child input field -> dot path into this node's inputs; empty passes all inputs.",
    )


class NodeKind(StrEnum):
    PURE = "pure"  # evaluated inline in workflow code
    ACTIVITY = "activity"  # runs as a Temporal activity
    CONTROL = "control"  # waits on Temporal messages (pauses), runs bodies or child runs


def _object_schema(title: str, description: str | None = None, *, open_: bool = False) -> dict[str, Any]:
    # The shape pydantic gives PySpur's empty input/output model classes.
    schema: dict[str, Any] = {"properties": {}, "title": title, "type": "object"}
    if description:
        schema["description"] = description
    if open_:
        schema["additionalProperties"] = True
    return schema


_BASE_INPUT_DOC = (
    "Base class for node inputs.\n\nEach node's input model will be dynamically created based on its "
    "predecessor nodes,\nwith fields named after node IDs and types being the corresponding NodeOutputModels."
)
_BASE_OUTPUT_DOC = "Base class for all node outputs.\n\nEach node type will define its own output model that inherits from this."


@dataclass(frozen=True)
class NodeSpec:
    """One catalogue entry."""

    node_type: str
    display_name: str
    group: str
    kind: NodeKind
    config_model: type[NodeConfig]
    # PySpur derives the acronym from the class's snake name and the colour from md5(class name).
    acronym: str
    color: str


_SPECS = [
    NodeSpec("InputNode", "Input", "Input/Output", NodeKind.PURE, InputNodeConfig, "IN", "#6F42C1"),
    NodeSpec("OutputNode", "Output", "Input/Output", NodeKind.PURE, OutputNodeConfig, "ON", "#17A2B8"),
    NodeSpec(
        "PythonFuncNode",
        "Python Function",
        "Code Execution",
        NodeKind.ACTIVITY,
        PythonFuncNodeConfig,
        "PFN",
        "#6610F2",
    ),
    NodeSpec("RouterNode", "Router", "Logic", NodeKind.PURE, RouterNodeConfig, "RN", "#FF7F50"),
    NodeSpec("CoalesceNode", "Coalesce", "Logic", NodeKind.PURE, CoalesceNodeConfig, "CN", "#28A745"),
    NodeSpec("MergeNode", "Merge", "Logic", NodeKind.PURE, MergeNodeConfig, "MN", "#6F42C1"),
    NodeSpec(
        "StaticValueNode", "Static Value", "Logic", NodeKind.PURE, StaticValueNodeConfig, "CVN", "#20C997"
    ),
    # PySpur registers this one by decorator, which lands it after the statically listed Logic nodes.
    NodeSpec(
        "HumanInterventionNode",
        "HumanIntervention",
        "Logic",
        NodeKind.CONTROL,
        HumanInterventionNodeConfig,
        "HIN",
        "#6610F2",
    ),
    NodeSpec(
        "SubworkflowNode", "Subworkflow", "Logic", NodeKind.CONTROL, SubworkflowNodeConfig, "SN", "#17A2B8"
    ),
    NodeSpec(
        "ForLoopNode", "ForLoopNode", "Experimental", NodeKind.CONTROL, ForLoopNodeConfig, "FLN", "#00BFFF"
    ),
]

# PySpur serves the schemas of its node classes' class-level input/output models. Router, Coalesce and
# Merge set no output model there, so PySpur answers `{}` for them.
_IO_SCHEMAS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "InputNode": (_object_schema("InputNodeInput"), _object_schema("InputNodeOutput")),
    "OutputNode": (
        _object_schema("BaseNodeInput", _BASE_INPUT_DOC),
        _object_schema("BaseNodeOutput", _BASE_OUTPUT_DOC),
    ),
    "PythonFuncNode": (_object_schema("PythonFuncNodeInput"), _object_schema("PythonFuncNodeOutput")),
    "RouterNode": (_object_schema("RouterNodeInput", "Input model for the router node."), {}),
    "CoalesceNode": (_object_schema("CoalesceNodeInput", "Input model for the coalesce node."), {}),
    "MergeNode": (_object_schema("MergeNodeInput"), {}),
    "StaticValueNode": (_object_schema("StaticValueNodeInput"), _object_schema("StaticValueNodeOutput")),
    "HumanInterventionNode": (
        _object_schema(
            "HumanInterventionNodeInput", "Input model for the human intervention node.", open_=True
        ),
        _object_schema("HumanInterventionNodeOutput", open_=True),
    ),
    "SubworkflowNode": (
        _object_schema("SubworkflowNodeInput", open_=True),
        _object_schema("SubworkflowNodeOutput", open_=True),
    ),
    "ForLoopNode": (_object_schema("ForLoopNodeInput"), _object_schema("ForLoopNodeOutput")),
}

NODE_CATALOGUE: dict[str, NodeSpec] = {spec.node_type: spec for spec in _SPECS}

# What the service can run today; a catalogue entry outside this set is shown but refused on save.
NODE_TYPES_IMPLEMENTED: frozenset[str] = frozenset(
    {
        "InputNode",
        "OutputNode",
        "StaticValueNode",
        "PythonFuncNode",
        "HumanInterventionNode",
        "RouterNode",
        "CoalesceNode",
        "MergeNode",
        "SubworkflowNode",
        "ForLoopNode",
    }
)


def supported_types() -> dict[str, list[dict[str, Any]]]:
    """The body of `GET /node/supported_types/`, in PySpur's shape and group order (a fresh copy)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for spec in _SPECS:
        config = spec.config_model.model_json_schema()
        config["title"] = spec.display_name
        groups.setdefault(spec.group, []).append(
            {
                "name": spec.node_type,
                "input": copy.deepcopy(_IO_SCHEMAS[spec.node_type][0]),
                "output": copy.deepcopy(_IO_SCHEMAS[spec.node_type][1]),
                "config": config,
                "visual_tag": {"acronym": spec.acronym, "color": spec.color},
                "has_fixed_output": spec.config_model.model_fields["has_fixed_output"].default,
            }
        )
    return groups
