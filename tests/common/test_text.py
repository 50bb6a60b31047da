"""The text limits both services share (ticketing_common.text), as tables of cases."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ticketing_common.text import (
    MAX_JSON_DEPTH,
    NUL_FREE,
    NUL_MESSAGE,
    VISIBLE,
    json_is_plain,
    json_problems,
    text_problem,
)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"a": "ok", "b": [1, 2.5, None, True]}, []),
        ({"a": "x\x00"}, [("a", NUL_MESSAGE)]),
        ({"tickets": [{}, {"title": "\x00"}]}, [("tickets[1].title", NUL_MESSAGE)]),
        ({"k\x00": 1}, [("k\\u0000", f"field name {NUL_MESSAGE}")]),
        ("\x00", [("body", NUL_MESSAGE)]),
        ({"x": nested(MAX_JSON_DEPTH - 1)}, []),
        (
            {"x": nested(MAX_JSON_DEPTH)},
            [("x" + "[0]" * MAX_JSON_DEPTH, "nested deeper than 32")],
        ),
    ],
    ids=["clean", "value", "path", "key", "root", "at-limit", "beyond-limit"],
)
def test_json_problems(document: Any, expected: list[tuple[str, str]]) -> None:
    """NULs in keys and strings and nesting beyond the limit, each named by its path."""
    assert [(p.field, p.message) for p in json_problems(document)] == expected


def test_json_problems_stop_at_the_limit() -> None:
    """A document full of NULs yields at most `limit` problems (the walk stops there)."""
    assert len(json_problems(["\x00"] * 1000, limit=5)) == 5


@pytest.mark.parametrize(
    ("value", "required", "expected"),
    [
        ("MTY01", False, None),
        ("", False, None),
        ("", True, "required, and not only white space"),
        ("  ", True, "required, and not only white space"),
        ("a\x00", False, NUL_MESSAGE),
        ("x" * 201, False, "at most 200 characters"),
    ],
)
def test_text_problem(value: str, required: bool, expected: str | None) -> None:
    """A CSV cell or query value: NUL, blank when required, too long."""
    assert text_problem(value, required=required) == expected


@pytest.mark.parametrize(
    ("value", "nul_free", "visible"),
    [
        ("E1", True, True),
        (" E 1 ", True, True),
        ("   ", True, False),
        ("", True, False),
        ("E\x00", False, False),
        ("\t\x00", False, False),
    ],
)
def test_patterns(value: str, nul_free: bool, visible: bool) -> None:
    """NUL_FREE and VISIBLE, the regexes the msgspec, pydantic and query types share."""
    assert bool(re.search(NUL_FREE, value)) is nul_free
    assert bool(re.search(VISIBLE, value)) is visible


@pytest.mark.parametrize(
    "document",
    [
        {"a": "plain", "b": [1, {"c": None}]},
        {"escaped": "\\u0000 is six characters here, not a NUL"},
        {"nul": "a\x00b"},
        {"k\x00": 1},
        "deep",
    ],
)
@pytest.mark.parametrize("depth", [0, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1])
def test_the_quick_check_agrees_with_the_walk(document: object, depth: int) -> None:
    """A quick yes only when the walk finds nothing; a problem always a quick no (a quick
    no without a problem, as for an escaped backslash before `u0000`, only costs the walk).
    Plain documents within the depth get the quick yes."""
    wrapped: object = document
    for _ in range(depth):
        wrapped = [wrapped]
    body = json.dumps(wrapped).encode()
    quick, problems = json_is_plain(body, json.loads(body)), json_problems(json.loads(body))
    assert not (quick and problems)
    # (The deepest document here nests 3 levels below its wrapping lists.)
    plain = "\\u0000" not in body.decode() and depth <= MAX_JSON_DEPTH - 3
    if plain:
        assert quick
