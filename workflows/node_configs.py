"""The config models of the node kinds (each kind in `workflows.node_kinds` names its own).

Deterministic and free of I/O (stdlib, pydantic and the definition models only), because workflow code
imports it.
"""

from __future__ import annotations

import json
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
