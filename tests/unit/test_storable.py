"""The one check of what can be stored (`core.storable`): on values, on JSON text, and for display."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from core import storable


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "where", "fragment"),
    [
        ({"a": [1, {"b": "x\x00"}]}, "a[1].b", "U+0000"),
        ({"k\x00": 1}, "value", "key"),
        (["ok", "\udc00"], "[1]", "surrogate"),
        ({"n": float("nan")}, "n", "nan"),
        ({"n": float("-inf")}, "n", "-inf"),
        (nested(storable.MAX_DEPTH + 1), "[0]", "nests deeper"),
    ],
)
def test_check_names_where_the_unstorable_part_sits(value: Any, where: str, fragment: str) -> None:
    with pytest.raises(storable.Unstorable) as err:
        storable.check(value)
    assert str(err.value).startswith(where) and fragment in str(err.value)


def test_check_accepts_what_postgresql_and_json_carry() -> None:
    storable.check(
        {"emoji": "\U0001f600", "text": "a\tb\n", "deep": nested(storable.MAX_DEPTH - 1), "n": 1.5}
    )


def test_a_very_deep_value_is_refused_without_exhausting_the_stack() -> None:
    assert "nests deeper" in (storable.problem(nested(100_000)) or "")


def _random_json(rnd: random.Random, depth: int = 0) -> Any:
    pick = rnd.random()
    if depth > 6 or pick < 0.3:
        return rnd.choice(
            [1, 2.5, True, None, "s", "a\\b", 'q"t', "[{", "\U0001f600", "\x00", "\ud800", "NaN"]
        )
    if pick < 0.65:
        return [_random_json(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    return {
        rnd.choice(["a", "b", "c\x00", "[", "\\"]): _random_json(rnd, depth + 1)
        for _ in range(rnd.randint(0, 3))
    }


def test_the_text_check_of_a_json_body_agrees_with_the_value_check() -> None:
    rnd = random.Random(7)
    for _ in range(2000):
        value = _random_json(rnd)
        text = json.dumps(value).encode()
        assert (storable.json_text_problem(text) is None) == (storable.problem(value) is None), text


@pytest.mark.parametrize(
    "text",
    [b"NaN", b"[1, -Infinity]", b"[" * 65 + b"]" * 65, b"[" * 100_000 + b"]" * 100_000, b'{"a": "\\u0000"}'],
)
def test_the_text_check_refuses_constants_depth_and_escapes(text: bytes) -> None:
    assert storable.json_text_problem(text) is not None


def test_the_text_check_lets_a_surrogate_pair_and_escaped_backslashes_through() -> None:
    assert storable.json_text_problem(b'{"a": "\\ud83d\\ude00", "b": "\\\\u0000", "c": "NaN [[["}') is None


def test_printable_and_shown_make_stored_values_safe_to_answer_with() -> None:
    assert storable.printable("bad\x00news\ud800") == "bad\\x00news\\ud800"
    ok = {"a": [1, "x"]}
    assert storable.shown(ok) is ok
    clipped = storable.shown({"deep": nested(200), "s": "a\x00"})
    assert storable.problem(clipped) is None and clipped["s"] == "a\\x00"
    json.dumps(clipped)
