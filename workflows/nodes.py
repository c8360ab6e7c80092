"""Node behaviour: definition-time checks, run-input validation and inline evaluation of pure nodes.

Imported by workflow code, so it is deterministic and does no I/O (stdlib, pydantic, the definition
models and `errors` only). Config models and the catalogue live in `workflows.node_configs`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from errors import InvalidDefinition, InvalidInput
from workflows.definition import WorkflowNode
from workflows.node_configs import (
    NODE_CATALOGUE,
    CoalesceNodeConfig,
    InputNodeConfig,
    MergeNodeConfig,
    NodeConfig,
    OutputNodeConfig,
    RouteCondition,
    RouteMapValue,
    RouterNodeConfig,
    StaticValueNodeConfig,
)

# Re-exported so the API and graph code need only this module for node questions.
from workflows.node_configs import NODE_TYPES_IMPLEMENTED as NODE_TYPES_IMPLEMENTED
from workflows.node_configs import supported_types as supported_types


class NodeEvaluationError(Exception):
    """A pure node cannot produce its output (a genuine fault, not a skipped branch)."""


# -- definition-time checks --------------------------------------------------------------------------


def parse_config(node: WorkflowNode) -> NodeConfig:
    """The node's config as its type's model (any catalogue type, runnable or not).

    Raises:
        InvalidDefinition: the type is not in the catalogue, or the config does not fit its model.
    """
    spec = NODE_CATALOGUE.get(node.node_type)
    if spec is None:
        raise InvalidDefinition(f"Node '{node.id}' has unknown node type '{node.node_type}'")
    try:
        return spec.config_model.model_validate(node.config)
    except ValidationError as err:
        problems = "; ".join(
            ".".join(["config", *(str(part) for part in e["loc"])]) + f": {e['msg']}" for e in err.errors()
        )
        raise InvalidDefinition(f"Node '{node.id}' ({node.node_type}): {problems}") from None


def validate_node(node: WorkflowNode) -> None:
    """Check one node on its own: id, runnable type, config (and an InputNode's declared fields).

    Raises:
        InvalidDefinition: naming the node id and the fault.
    """
    # `_row`, `_run_id`, `_error` are reserved keys of batch output lines, which are keyed by node id.
    if node.id.startswith("_"):
        raise InvalidDefinition(f"Node id '{node.id}' may not start with '_' (reserved)")
    if node.node_type in NODE_CATALOGUE and node.node_type not in NODE_TYPES_IMPLEMENTED:
        raise InvalidDefinition(
            f"Node '{node.id}' has node type '{node.node_type}', which this service cannot run yet"
        )
    config = parse_config(node)
    if isinstance(config, InputNodeConfig):
        declared_input_fields(node)
    if isinstance(config, OutputNodeConfig):
        for out_field, path in config.output_map.items():
            if not path.strip():
                raise InvalidDefinition(
                    f"Node '{node.id}' (OutputNode): config.output_map.{out_field} is empty"
                )


# -- run inputs --------------------------------------------------------------------------------------

# Type names PySpur's `output_schema` accepts, plus JSON Schema's, mapped to JSON types; others are not checked.
_SCHEMA_TYPE_NAMES = {
    "string": "string",
    "str": "string",
    "integer": "integer",
    "int": "integer",
    "number": "number",
    "float": "number",
    "boolean": "boolean",
    "bool": "boolean",
    "list": "array",
    "array": "array",
    "dict": "object",
    "object": "object",
    "null": "null",
}


@dataclass(frozen=True)
class InputField:
    """A field an InputNode declares. Empty `types` means any JSON value is accepted."""

    name: str
    types: tuple[str, ...]
    required: bool


def _schema_type(name: str) -> tuple[str, ...]:
    lowered = name.strip().lower()
    if lowered in _SCHEMA_TYPE_NAMES:
        return (_SCHEMA_TYPE_NAMES[lowered],)
    # Python annotations such as "List[Dict[str, str]]" (PySpur's chatbot default) check only the outer type.
    for prefix, json_type in (("list[", "array"), ("dict[", "object")):
        if lowered.startswith(prefix):
            return (json_type,)
    return ()


def declared_input_fields(input_node: WorkflowNode) -> list[InputField]:
    """The fields an InputNode declares: from `output_json_schema` if set, else from `output_schema`.

    Every field is required unless the JSON schema has a `required` list that leaves it out.

    Raises:
        InvalidDefinition: the config is malformed or `output_json_schema` is not a usable JSON schema.
    """
    config = parse_config(input_node)
    prefix = f"Node '{input_node.id}' ({input_node.node_type}): config.output_json_schema"
    if not config.output_json_schema or not config.output_json_schema.strip():
        return [InputField(name, _schema_type(kind), True) for name, kind in config.output_schema.items()]
    try:
        schema = json.loads(config.output_json_schema)
    except ValueError as err:
        raise InvalidDefinition(f"{prefix} is not valid JSON: {err}") from None
    properties = schema.get("properties", {}) if isinstance(schema, dict) else None
    required = schema.get("required") if isinstance(schema, dict) else None
    if not isinstance(properties, dict) or not all(isinstance(p, dict) for p in properties.values()):
        raise InvalidDefinition(f"{prefix} must be an object schema whose properties are schemas")
    if required is not None and not (
        isinstance(required, list) and all(isinstance(r, str) for r in required)
    ):
        raise InvalidDefinition(f"{prefix}: 'required' must be a list of field names")
    fields = []
    for name, prop in properties.items():
        kind = prop.get("type")  # a name, a list of names, or absent (then any value is accepted)
        names = [kind] if isinstance(kind, str) else kind if isinstance(kind, list) else []
        mapped = [_schema_type(t) for t in names if isinstance(t, str)]
        # One unknown alternative makes the field unchecked, rather than rejecting what it would allow.
        types = () if any(not m for m in mapped) else tuple(m[0] for m in mapped)
        fields.append(InputField(name, types, required is None or name in required))
    # JSON Schema lets `required` name fields it does not describe; they are required, of any type.
    fields.extend(InputField(name, (), True) for name in required or [] if name not in properties)
    return fields


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _has_type(value: Any, json_type: str) -> bool:
    actual = _json_type(value)
    if json_type == "number":
        return actual in ("integer", "number")
    if json_type == "integer":
        # JSON Schema counts 2.0 as an integer; bool never is (checked first by `_json_type`).
        return actual == "integer" or (actual == "number" and float(value).is_integer())
    if json_type in ("string", "boolean", "array", "object", "null"):
        return actual == json_type
    return True  # a type this service does not know is not checked


def validate_run_inputs(input_node: WorkflowNode, payload: Any) -> dict[str, Any]:
    """Check a run's input against what the InputNode declares; returns it (extra fields kept).

    Raises:
        InvalidInput: not an object, a required field missing, or a field of the wrong top-level type;
            all problems are listed, separated by "; ".
        InvalidDefinition: the InputNode's own config is unusable.
    """
    if not isinstance(payload, dict):
        raise InvalidInput(f"Inputs for '{input_node.id}' must be an object")
    problems = []
    for declared in declared_input_fields(input_node):
        if declared.name not in payload:
            if declared.required:
                problems.append(f"Missing required input field '{declared.name}'")
            continue
        value = payload[declared.name]
        if declared.types and not any(_has_type(value, t) for t in declared.types):
            problems.append(
                f"Input field '{declared.name}' must be {' or '.join(declared.types)}, got {_json_type(value)}"
            )
    if problems:
        raise InvalidInput("; ".join(problems))
    return payload


# -- evaluation --------------------------------------------------------------------------------------

_MISSING = object()


def _lookup(data: Any, path: str) -> Any:
    """Follow a dot path through dicts (and list indices); `_MISSING` when it does not resolve.

    At each level an exact key wins, then the longest key that prefixes the rest of the path, so
    titles and field names that contain dots still resolve.
    """
    current, rest = data, path
    while True:
        if isinstance(current, dict):
            if rest in current:
                return current[rest]
            keys = [k for k in current if isinstance(k, str) and rest.startswith(k + ".")]
            if not keys:
                return _MISSING
            key = max(keys, key=len)
            current, rest = current[key], rest[len(key) + 1 :]
        elif isinstance(current, list):
            head, dot, tail = rest.partition(".")
            if not (head.isascii() and head.isdigit()) or int(head) >= len(current):
                return _MISSING
            if not dot:
                return current[int(head)]
            current, rest = current[int(head)], tail
        else:
            return _MISSING


def input_node_output(node: WorkflowNode, payload: Mapping[str, Any]) -> dict[str, Any]:
    """An InputNode's output: the run's (already validated) initial input, copied."""
    if node.node_type != "InputNode":
        raise NodeEvaluationError(f"Node '{node.id}' is a {node.node_type}, not an InputNode")
    return copy.deepcopy(dict(payload))


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
    found = _lookup(data, cond.variable)
    value = None if found is _MISSING else found
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


def _evaluate_output(node: WorkflowNode, config: OutputNodeConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    if not config.output_map:
        # PySpur fails here (defect 15); pass the inputs' fields through instead, later inputs winning.
        merged: dict[str, Any] = {}
        for output in inputs.values():
            if isinstance(output, dict):
                merged.update(output)
        return merged
    result: dict[str, Any] = {}
    for out_field, path in config.output_map.items():
        value = _lookup(inputs, path)
        if value is _MISSING:
            raise NodeEvaluationError(
                f"Node '{node.id}' (OutputNode): output_map.{out_field} = '{path}' does not resolve "
                f"(inputs: {', '.join(inputs) or 'none'})"
            )
        result[out_field] = value
    return result


def evaluate_pure(node: WorkflowNode, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """Evaluate an Output, StaticValue, Router, Coalesce or Merge node on `{predecessor title: output}`.

    Returns None when the node is skipped: a Coalesce whose inputs are all None, or any other node
    with a None input (an untaken branch upstream).

    Raises:
        NodeEvaluationError: any fault (wrong kind of node, bad config, an output path that does not
            resolve), so that workflow code fails the node rather than the workflow task.
    """
    try:
        config = parse_config(node)
    except InvalidDefinition as err:
        raise NodeEvaluationError(err.detail) from None
    if isinstance(config, CoalesceNodeConfig):
        for title in [*config.preferences, *inputs]:
            if inputs.get(title) is not None:
                return copy.deepcopy(dict(inputs[title]))
        return None
    if any(output is None for output in inputs.values()):
        return None
    inputs = copy.deepcopy(inputs)  # outputs must not alias upstream outputs
    if isinstance(config, OutputNodeConfig):
        return _evaluate_output(node, config, inputs)
    if isinstance(config, StaticValueNodeConfig):
        return copy.deepcopy(config.values)
    if isinstance(config, MergeNodeConfig):
        return inputs
    if isinstance(config, RouterNodeConfig):
        # Every matching route fires (PySpur's multi-fire); each gets the router's whole input.
        return {
            name: copy.deepcopy(inputs) if _route_matches(inputs, route) else None
            for name, route in config.route_map.items()
        }
    raise NodeEvaluationError(f"Node '{node.id}' ({node.node_type}) is not evaluated inline")


def map_inputs(node: WorkflowNode, inputs: dict[str, Any], input_map: dict[str, str]) -> dict[str, Any]:
    """`{field: value at path}` for a container node's `input_map` (paths start with a predecessor title).

    Raises:
        NodeEvaluationError: a path does not resolve.
    """
    mapped: dict[str, Any] = {}
    for field, path in input_map.items():
        value = _lookup(inputs, path)
        if value is _MISSING:
            raise NodeEvaluationError(
                f"Node '{node.id}' ({node.node_type}): input_map.{field} = '{path}' does not resolve "
                f"(inputs: {', '.join(inputs) or 'none'})"
            )
        mapped[field] = copy.deepcopy(value)
    return mapped


def merged_fields(inputs: dict[str, Any]) -> dict[str, Any]:
    """The fields of every input merged into one object (later inputs win), for a child run's input."""
    merged: dict[str, Any] = {}
    for output in inputs.values():
        if isinstance(output, dict):
            merged.update(copy.deepcopy(output))
    return merged
