"""Bulk columns bound as one string in Postgres's array syntax (`{"a","b"}`, `{1,NULL}`).

Why not a Python list, which asyncpg binds as a binary array: before encoding an array,
asyncpg asks of every element whether it is itself a nested array, with
`isinstance(element, collections.abc.Iterable)` and, for strings, `Sized`. Those checks
run ABCMeta's `__instancecheck__`, a Python-level call of 0.45-0.8 µs per element on this
machine, and were 10-13 % of the WM's and of a BE's CPU in the end-to-end run
(docs/performance.md, item 45). One `str.join` costs about 20 ns per element, and Postgres
reads the text form as cheaply as the binary one.

The statement casts the parameter from text, so that text is what the driver binds:
`CAST(CAST(:names AS text) AS text[])` (SQLAlchemy), `$5::text::text[]` (asyncpg). (With
only the outer cast the parameter is a text[], and the driver refuses a string for it.)

Not for JSON documents (escaping every quote of a 1.5 KB document costs more than the
check), nor for uuids, timestamps and floats (Python would format them one by one): they
stay lists, and so does free text that is mostly absent (errors).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

_BOOLEANS = {True: "t", False: "f", None: "NULL"}


def text_array(values: Sequence[str | None]) -> str:
    """A text[] literal: every element quoted (so "NULL", "" and " a " stay themselves),
    None as NULL."""
    if not values:
        return "{}"
    if None in values:
        return "{" + ",".join("NULL" if v is None else _quoted(v) for v in values) + "}"
    texts = cast("Sequence[str]", values)  # (no None: asked above)
    joined = "".join(texts)
    if "\x00" in joined:
        # (Postgres text cannot hold NUL; the boundaries refuse it before it gets here.)
        raise ValueError("a text value holds NUL")
    if '"' in joined or "\\" in joined:
        # Escaped in three passes over the whole column, NUL standing in for the separator.
        escaped = _escaped("\x00".join(texts))
        return '{"' + escaped.replace("\x00", '","') + '"}'
    # The common case, in three C calls: no element needs escaping.
    return '{"' + '","'.join(texts) + '"}'


def int_array(values: Sequence[int | None]) -> str:
    """An integer[] / bigint[] literal, None as NULL."""
    if None in values:
        return "{" + ",".join("NULL" if v is None else int.__repr__(v) for v in values) + "}"
    # int.__repr__, not str: the member of an (int, Enum) mixin would print its name.
    return "{" + ",".join(map(int.__repr__, cast("Sequence[int]", values))) + "}"


def bool_array(values: Sequence[bool | None]) -> str:
    """A boolean[] literal, None as NULL."""
    return "{" + ",".join(map(_BOOLEANS.__getitem__, values)) + "}"


def _quoted(value: str) -> str:
    return '"' + _escaped(value) + '"'


def _escaped(text: str) -> str:
    # Inside a double-quoted element only a double quote and a backslash are special.
    # (Two replaces: ten times faster than str.translate with a table.)
    return text.replace("\\", "\\\\").replace('"', '\\"')
