"""What PostgreSQL, JSON and Temporal can carry: the one check for every value the service stores or
hands to Temporal, whether it came from a request body, an upload or user code.

PostgreSQL's text and jsonb refuse U+0000; UTF-8 (asyncpg, Temporal's JSON payloads) cannot encode a
lone surrogate; JSON has no NaN or Infinity; and values nested very deep break recursive encoders
(and, stored, every later read). A value that breaks one of these would fail the same way on every
retry, so it is refused where it enters, naming where it sits.
"""

from __future__ import annotations

import math
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
