"""What an LLM call sends and how its reply becomes the node's output, as PySpur 0.1.18 does it
(`nodes/llm/single_llm_call.py`, `_utils.py`): sandboxed Jinja2 templates over `{Title: output}`,
messages in PySpur's order, the output schema made strict, the reply parsed, repaired and checked.

Unlike PySpur, a template naming something the input lacks fails the node, naming it, instead of
rendering empty.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from typing import Any

import json_repair
from jinja2 import StrictUndefined, Template, TemplateError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
}


class LlmNodeError(Exception):
    """A fault of the node (template, schema, reply) that retrying cannot fix; `kind` types it."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def render(template: str, inputs: dict[str, Any], field: str) -> str:
    """Raises:
    LlmNodeError("template"): the template names something the input does not have, or fails.
    """
    try:
        return _compiled(template).render(**inputs)
    except UndefinedError as err:
        titles = ", ".join(sorted(inputs)) or "none"
        raise LlmNodeError(
            "template",
            f"{field} names something the node's input does not have: {err.message} (inputs: {titles})",
        ) from None
    except TemplateError as err:
        raise LlmNodeError("template", f"{field} cannot be rendered: {err.message}") from None


@functools.lru_cache(maxsize=512)
def _compiled(template: str) -> Template:
    # Compiling takes about a millisecond, rendering a few microseconds; a node's templates are the
    # same on every call.
    return _ENV.from_string(template)


def _lookup(inputs: dict[str, Any], variable: str) -> Any:
    value: Any = inputs
    for part in variable.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _history(inputs: dict[str, Any], variable: str) -> list[dict[str, Any]] | None:
    # PySpur ignores a history that is missing or not a list.
    value = _lookup(inputs, variable)
    return value if isinstance(value, list) else None


# PySpur reads only `url_variables["file"]` (any file type, sent as an image URL part).
URL_KINDS = ("file",)


def attach_urls(messages: list[dict[str, Any]], config: dict[str, Any], inputs: dict[str, Any]) -> None:
    """PySpur's `url_variables`: the URL named by the variable joins every user message (few-shot
    inputs included, as PySpur) as an `image_url` content part after its text. Unlike PySpur, a
    local file path is refused (the worker reads no files for a tenant).

    Raises:
        LlmNodeError("template"): a variable is missing from the input or is not an http(s) or data URL.
    """
    urls = config.get("url_variables") or {}
    parts: list[dict[str, Any]] = []
    for kind in URL_KINDS:
        variable = urls.get(kind)
        if not variable:
            continue
        value = _lookup(inputs, variable)
        if not isinstance(value, str) or not value.startswith(("http://", "https://", "data:")):
            shown = "missing" if value is None else f"{type(value).__name__} {str(value)[:80]!r}"
            raise LlmNodeError(
                "template",
                f"url_variables.{kind} names '{variable}', which should be an http(s) or data: URL ({shown})",
            )
        parts.append({"type": "image_url", "image_url": {"url": value}})
    if not parts:
        return
    for message in messages:
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            message["content"] = [{"type": "text", "text": message["content"]}, *parts]


def build_messages(config: dict[str, Any], inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """System, then a user/assistant pair per few-shot example, then the history, then the user
    message (the input as indented JSON when the template is empty).

    Raises:
        LlmNodeError("template"): see `render`.
    """
    system = render(config.get("system_message") or "", inputs, "system_message")
    user_template = config.get("user_message") or ""
    user = (
        render(user_template, inputs, "user_message")
        if user_template.strip()
        else json.dumps(inputs, indent=2)
    )
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for example in config.get("few_shot_examples") or []:
        messages.append({"role": "user", "content": example["input"]})
        messages.append({"role": "assistant", "content": example["output"]})
    variable = config.get("message_history_variable")
    if config.get("enable_message_history") and variable:
        messages.extend(_history(inputs, variable) or [])
    messages.append({"role": "user", "content": user})
    return messages


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """PySpur's `sanitize_json_schema`: no additional properties and every property required, at
    every level (what OpenAI's strict structured output demands)."""
    schema = copy.deepcopy(schema)

    def walk(node: dict[str, Any]) -> None:
        node.setdefault("additionalProperties", False)
        for key, value in (node.get("properties") or {}).items():
            required = node.setdefault("required", [])
            if key not in required:
                required.append(key)
            if isinstance(value, dict):
                walk(value)
        items = node.get("items")
        if isinstance(items, dict):
            walk(items)

    walk(schema)
    schema["additionalProperties"] = False
    return schema


def output_schema(config: dict[str, Any]) -> dict[str, Any]:
    """The node's output JSON schema (PySpur's default when none is set).

    Raises:
        LlmNodeError("bad_request"): the schema is not a JSON object schema.
    """
    text = config.get("output_json_schema")
    if not isinstance(text, str) or not text.strip():
        return {"type": "object", "properties": {"output": {"type": "string"}}, "required": ["output"]}
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as err:
        raise LlmNodeError("bad_request", f"output_json_schema is not JSON: {err.msg}") from None
    if not isinstance(schema, dict):
        raise LlmNodeError("bad_request", "output_json_schema must be a JSON object schema")
    return schema


def without_tool_calls(schema: dict[str, Any]) -> dict[str, Any]:
    """An agent's output schema as the model answers it: `tool_calls` is filled by the node (PySpur
    overwrites it with the conversation), so the reply need not carry it."""
    schema = copy.deepcopy(schema)
    if isinstance(schema.get("properties"), dict):
        schema["properties"].pop("tool_calls", None)
    if isinstance(schema.get("required"), list):
        schema["required"] = [r for r in schema["required"] if r != "tool_calls"]
    return schema


# Keys the run keeps on its conversation's messages that only the anthropic/ route reads.
_NOT_CHAT = ("is_error", "thinking_blocks")


def chat_message(message: dict[str, Any]) -> dict[str, Any]:
    """A message of the run's conversation as the chat completions format takes it."""
    return {k: v for k, v in message.items() if k not in _NOT_CHAT}


def schema_in_prompt(messages: list[dict[str, Any]], schema: dict[str, Any]) -> None:
    """PySpur's JSON mode for providers without strict schemas: the schema joins the system message."""
    messages[0]["content"] += (
        "\nYou must respond with valid JSON only. No other text before or after the JSON Object."
        "The JSON Object must adhere to this schema: " + json.dumps(schema)
    )


def plain_reply(content: str, reasoning_separator: str | None) -> dict[str, Any]:
    """A model without JSON output: its text is the `output` field (reasoning removed), as PySpur."""
    if reasoning_separator:
        content = re.sub(reasoning_separator, "", content, flags=re.DOTALL)
    return {"output": content}


def parse_reply(content: str | None, schema: dict[str, Any]) -> dict[str, Any]:
    """The reply as the schema's fields: JSON, else repaired JSON, then checked field by field.

    Raises:
        LlmNodeError("parsing_error"): no JSON object can be made of the reply.
        LlmNodeError("invalid_json_format"): the object does not fit the schema (naming the field).
    """
    if content is None:
        raise LlmNodeError("parsing_error", "The provider's reply has no content")
    try:
        value = json.loads(content)
    except json.JSONDecodeError:
        value = json_repair.loads(content)
    if not isinstance(value, dict):
        raise LlmNodeError("parsing_error", f"The reply is not a JSON object: {content[:200]!r}")
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return value
    _check(value, schema, "")
    return {k: value[k] for k in properties if k in value}


def _check(value: Any, schema: dict[str, Any], path: str) -> None:
    expected = schema.get("type")
    where = path or "the reply"
    if isinstance(expected, str) and expected in _JSON_TYPES:
        ok = isinstance(value, _JSON_TYPES[expected]) and not (
            expected in ("integer", "number") and isinstance(value, bool)
        )
        if expected == "integer" and isinstance(value, float) and value.is_integer():
            ok = True
        if not ok:
            raise LlmNodeError(
                "invalid_json_format", f"Field '{where}' should be {expected}, got {type(value).__name__}"
            )
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name in schema.get("required") or []:
            if name not in value:
                raise LlmNodeError(
                    "invalid_json_format", f"Field '{_join(path, name)}' is missing from the reply"
                )
        for name, sub in properties.items():
            if name in value and isinstance(sub, dict):
                _check(value[name], sub, _join(path, name))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{i}]")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
