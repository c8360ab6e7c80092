"""Node fields: dot paths into a node's inputs, input maps, an InputNode's declared fields and the
check of a run's input against them. Shared by node kinds, the catalogue and the API; deterministic.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from errors import InvalidDefinition, InvalidInput
from workflows.definition import WorkflowNode
from workflows.node_configs import InputNodeConfig

ModelT = TypeVar("ModelT", bound=BaseModel)


class NodeEvaluationError(Exception):
    """A pure node cannot produce its output (a genuine fault, not a skipped branch)."""


def _config_fault(node: WorkflowNode, errors: list[ErrorDetails]) -> InvalidDefinition:
    problems = "; ".join(
        ".".join(["config", *(str(part) for part in e["loc"])]) + f": {e['msg']}" for e in errors
    )
    return InvalidDefinition(f"Node '{node.id}' ({node.node_type}): {problems}")


def validated_config(node: WorkflowNode, model: type[ModelT]) -> ModelT:
    """The node's config as `model`.

    Raises:
        InvalidDefinition: naming the node and every field that does not fit.
    """
    try:
        return model.model_validate(node.config)
    except ValidationError as err:
        raise _config_fault(node, err.errors()) from None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def check_config_types(node: WorkflowNode, model: type[BaseModel]) -> None:
    """Refuse config values of the wrong JSON type (a number where text belongs): a shape fault.
    Null or blank values, missing fields and values out of range are what the editor leaves while a
    user draws; they are problems of a draft (`validated_config` names them at run time).

    Raises:
        InvalidDefinition: naming the node and every value of the wrong type.
    """
    try:
        model.model_validate(node.config)
    except ValidationError as err:
        wrong = [
            e
            for e in err.errors()
            if e["type"].endswith(("_type", "_parsing")) and not _blank(e.get("input"))
        ]
        if wrong:
            raise _config_fault(node, wrong) from None


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
    config = validated_config(input_node, InputNodeConfig)
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


_BOOLEAN_TEXT = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _from_text(text: str, json_type: str, json_text: bool) -> tuple[bool, Any]:
    """(converted, value): `text` as a value of `json_type`, if it reads as one."""
    stripped = text.strip()
    if json_type == "boolean":
        found = _BOOLEAN_TEXT.get(stripped.lower())
        return (found is not None, found)
    if json_type == "null":
        return (stripped.lower() == "null", None)
    if json_type in ("array", "object") and not json_text:
        return (False, None)
    try:
        value = json.loads(stripped, parse_constant=_reject_constant)
    except ValueError:
        return (False, None)
    if json_type == "integer" and isinstance(value, float) and value.is_integer():
        value = int(value)
    return (_has_type(value, json_type), value)


def convert_run_inputs(input_node: WorkflowNode, payload: Any, *, json_text: bool = True) -> Any:
    """A run's input as PySpur's editor (and a CSV dataset) sends it, made typed: a text value of a
    field declared with other types than string converts to the first that it reads as (`"21"` ->
    21, `"true"` -> true, JSON text for objects and lists when `json_text`); a blank one counts as
    absent. Values that do not convert stay as they are, for `validate_run_inputs` to name.

    Raises:
        InvalidDefinition: the InputNode's own config is unusable.
    """
    if not isinstance(payload, dict):
        return payload
    converted = dict(payload)
    for declared in declared_input_fields(input_node):
        value = converted.get(declared.name)
        if not isinstance(value, str) or not declared.types or "string" in declared.types:
            continue
        if not value.strip():
            del converted[declared.name]
            continue
        for json_type in declared.types:
            ok, typed = _from_text(value, json_type, json_text)
            if ok:
                converted[declared.name] = typed
                break
    return converted


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


# -- paths -----------------------------------------------------------------------------------------

MISSING = object()


def lookup(data: Any, path: str) -> Any:
    """Follow a dot path through dicts (and list indices); `MISSING` when it does not resolve.

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
                return MISSING
            key = max(keys, key=len)
            current, rest = current[key], rest[len(key) + 1 :]
        elif isinstance(current, list):
            head, dot, tail = rest.partition(".")
            if not (head.isascii() and head.isdigit()) or int(head) >= len(current):
                return MISSING
            if not dot:
                return current[int(head)]
            current, rest = current[int(head)], tail
        else:
            return MISSING


def map_inputs(node: WorkflowNode, inputs: dict[str, Any], input_map: dict[str, str]) -> dict[str, Any]:
    """`{field: value at path}` for a container node's `input_map` (paths start with a predecessor title).

    Raises:
        NodeEvaluationError: a path does not resolve.
    """
    mapped: dict[str, Any] = {}
    for field, path in input_map.items():
        value = lookup(inputs, path)
        if value is MISSING:
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
