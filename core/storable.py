"""What PostgreSQL, JSON and Temporal can carry: the one check for every value the service stores or
hands to Temporal, whether it came from a request body, an upload or user code.

PostgreSQL's text and jsonb refuse U+0000; UTF-8 (asyncpg, Temporal's JSON payloads) cannot encode a
lone surrogate; JSON has no NaN or Infinity; and values nested very deep break recursive encoders
(and, stored, every later read). A value that breaks one of these would fail the same way on every
retry, so it is refused where it enters, naming where it sits.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Sequence
from typing import Any

# Deep enough for any real document or graph config, shallow enough for every recursive encoder
# (json, pydantic, asyncpg's jsonb, Temporal's payload converter) with room to spare.
MAX_DEPTH = 64

Loc = tuple[str | int, ...]


class Unstorable(ValueError):
    """A value the service cannot store or hand on; `loc` is where it sits, `reason` what is wrong."""

    def __init__(self, loc: Loc, reason: str) -> None:
        super().__init__(f"{where(loc)}: {reason}")
        self.loc = loc
        self.reason = reason


def where(loc: Sequence[str | int]) -> str:
    """`initial_inputs.input_node.x[3]`-style name of a location (`value` for the whole)."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "value"


def string_problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None."""
    if "\x00" in text:
        return "contains U+0000 (NUL), which cannot be stored"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (U+D800 to U+DFFF), which is not valid Unicode"
    return None


def printable(text: str) -> str:
    """`text` made storable for display (an error message quoting user code's own words): U+0000 and
    lone surrogates become escapes."""
    if string_problem(text) is None:
        return text
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def check(value: Any, loc: Loc = (), *, max_depth: int = MAX_DEPTH) -> None:
    """Walk a JSON-like value (iteratively: a deep value must not exhaust the stack here either).

    Raises:
        Unstorable: the first string or key with U+0000 or a lone surrogate, a non-finite number,
            or a container nested deeper than `max_depth`.
    """
    stack: list[tuple[Any, Loc, int]] = [(value, loc, 0)]
    while stack:
        item, at, depth = stack.pop()
        if isinstance(item, str):
            if (problem := string_problem(item)) is not None:
                raise Unstorable(at, problem)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise Unstorable(at, f"is {item}, which JSON cannot carry")
        elif isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                raise Unstorable(at, f"nests deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, sub in item.items():
                    if isinstance(key, str) and (problem := string_problem(key)) is not None:
                        raise Unstorable(at, f"has a key that {problem}")
                    stack.append((sub, (*at, str(key)), depth + 1))
            else:
                stack.extend((sub, (*at, i), depth + 1) for i, sub in enumerate(item))


def problem(value: Any, loc: Loc = ()) -> str | None:
    """`check` as a message (None when the value can be stored)."""
    try:
        check(value, loc)
    except Unstorable as err:
        return str(err)
    return None


TOO_DEEP = "(nested too deep to show)"


def shown(value: Any, max_depth: int = MAX_DEPTH) -> Any:
    """A stored JSON value made safe to answer with: the value itself when it passes `check` (the usual
    case, no copy), else a copy with the parts nested deeper than `max_depth` replaced by `TOO_DEEP`
    and unstorable strings escaped. For rows stored before the edge checked what came in."""
    if problem(value) is None:
        return value
    return _shown(value, max_depth)


def _shown(value: Any, depth: int) -> Any:
    # Recursion is bounded by `depth` (MAX_DEPTH), far below Python's limit.
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict | list):
        if depth <= 0:
            return TOO_DEEP
        if isinstance(value, dict):
            return {printable(str(k)): _shown(v, depth - 1) for k, v in value.items()}
        return [_shown(v, depth - 1) for v in value]
    return value


# A JSON body is checked on its text, without building the value, in the common case (walking a
# 2 MB body's values in Python takes longer than everything else its request does). In JSON text,
# U+0000 and surrogates can only appear as \\u escapes, NaN and Infinity only as bare words outside
# strings, and the nesting depth is what is left once the strings are taken out. A body that looks
# suspect is parsed and walked to name the exact field.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # "unrolled": one step per run, not per character
_CONSTANT = re.compile(rb"NaN|Infinity")
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def json_text_problem(body: bytes) -> tuple[Loc, str, str] | None:
    """(where, what, kind) for a JSON text holding something `check` refuses, or None when it holds
    nothing of the kind (or is not JSON: the caller's own parser then refuses it)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as err:
        return ("body",), f"is not UTF-8 (byte {err.start})", "json_invalid"
    if _SUSPECT_ESCAPE.search(body):
        return _parsed_problem(body)  # maybe only a surrogate pair or an escaped backslash: look closer
    bare = _STRING.sub(b'""', body)
    if _CONSTANT.search(bare):
        return _parsed_problem(body)
    # Opening brackets count +1 and closing ones -1 (0xFF read as a signed byte): the deepest point is
    # the largest running sum, found in C.
    steps = memoryview(_NOT_BRACKET.sub(b"", bare).translate(_STEPS)).cast("b")
    return _parsed_problem(body) if max(itertools.accumulate(steps), default=0) > MAX_DEPTH else None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def _parsed_problem(body: bytes) -> tuple[Loc, str, str] | None:
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        return ("body",), f"nests deeper than {MAX_DEPTH} levels", "value_error"
    except ValueError as err:  # JSONDecodeError, a bad constant
        return ("body",), f"JSON decode error: {str(err)[:200]}", "json_invalid"
    try:
        check(value, ("body",))
    except Unstorable as err:
        return err.loc, err.reason, "value_error"
    return None
