"""Bulk columns bound as array text: Postgres reads back exactly the values given (quotes,
backslashes, braces, commas, blanks, the word NULL, NULL itself), and binding them costs no
per-element ABC check (what they replace)."""

from __future__ import annotations

import collections.abc
from collections.abc import Sequence
from enum import Enum
from typing import Any

import asyncpg
import pytest

from tests.conftest import DatabaseFactory
from ticketing_common.array_text import bool_array, int_array, text_array

AWKWARD_TEXTS: list[str | None] = [
    "plain",
    "",
    " padded ",
    "NULL",
    "null",
    'a "quoted" word',
    "back\\slash\\",
    "\\",
    '"',
    "{braces}",
    "comma, separated",
    "semi;colon",
    "tab\there\nnewline",
    "ñandú ✓ 雪",
    None,
    "US-3/0/1:CCAP01",
]


class Level(int, Enum):
    LOW = 1
    HIGH = 2


async def _read_back(
    factory: DatabaseFactory, sql: str, literals: Sequence[str]
) -> list[list[Any]]:
    connection = await asyncpg.connect(factory.server.sync_dsn("postgres"))
    try:
        return [await connection.fetchval(sql, literal) for literal in literals]
    finally:
        await connection.close()


@pytest.mark.parametrize(
    "values",
    [
        AWKWARD_TEXTS,
        [v for v in AWKWARD_TEXTS if v is not None],  # the path without NULLs
        [v for v in AWKWARD_TEXTS if v is not None and '"' not in v and "\\" not in v],
        ["plain", "one \\ among", "plain again", 'and " one'],  # escaped as one column
        ["only"],
        [""],
        [None],
        [],
    ],
    ids=["all", "no-null", "no-escape", "few-escaped", "one", "empty-string", "null", "none"],
)
async def test_text_arrays_read_back_as_given(
    database_factory: DatabaseFactory, values: list[str | None]
) -> None:
    (got,) = await _read_back(
        database_factory, "SELECT CAST($1::text AS text[])", [text_array(values)]
    )
    assert got == values


def test_a_text_holding_nul_is_refused_not_split() -> None:
    """NUL stands in for the separator while a column is escaped: a value holding one must
    never become two elements (Postgres text cannot hold it anyway)."""
    with pytest.raises(ValueError, match="NUL"):
        text_array(['say "a"', "b\x00c"])


async def test_integer_arrays_read_back_as_given(database_factory: DatabaseFactory) -> None:
    cases: list[list[int | None]] = [
        [1, -2, 0, 2**62, -(2**62)],
        [7, None, 9],
        [None],
        [],
        [Level.HIGH, Level.LOW],  # printed as numbers: str() would give Level.HIGH
    ]
    got = await _read_back(
        database_factory, "SELECT CAST($1::text AS bigint[])", [int_array(c) for c in cases]
    )
    assert got == [[None if v is None else int(v) for v in case] for case in cases]


async def test_boolean_arrays_read_back_as_given(database_factory: DatabaseFactory) -> None:
    cases: list[list[bool | None]] = [[True, False, None], [], [False]]
    got = await _read_back(
        database_factory, "SELECT CAST($1::text AS boolean[])", [bool_array(c) for c in cases]
    )
    assert got == cases


def test_building_them_asks_no_abc_per_element(monkeypatch: pytest.MonkeyPatch) -> None:
    """What they are for: asyncpg's binary arrays ask `isinstance(x, Iterable)` of each
    element through ABCMeta.__instancecheck__; these helpers never do."""
    asked: list[object] = []
    original = type(collections.abc.Iterable).__instancecheck__

    def counting(cls: type, instance: object) -> bool:
        asked.append(instance)
        return bool(original(cls, instance))

    monkeypatch.setattr(type(collections.abc.Iterable), "__instancecheck__", counting)
    texts = [f"element {i}" for i in range(100)]
    numbers: list[int | None] = list(range(100))
    assert isinstance(texts, collections.abc.Iterable)  # the counter counts
    asked.clear()
    text_array(texts)
    text_array([*texts, None])
    int_array(numbers)
    bool_array([True] * 100)
    assert asked == []
