"""The one keyset cursor (ticketing_common.cursor): round trips, and a 422 for anything else."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest

from ticketing_common.cursor import KeysetCursor
from ticketing_common.errors import ValidationFailed

BY_ID = KeysetCursor(int)
BY_TIME_AND_ID = KeysetCursor(datetime, uuid.UUID)


def raw(text: str) -> str:
    """A cursor whose JSON is `text`, as a client could forge one."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_cursor_round_trips_its_typed_key() -> None:
    """What encode writes, decode gives back with the declared types."""
    opened, ticket = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC), uuid.uuid4()
    assert BY_ID.decode(BY_ID.encode(2**63 - 1)) == (2**63 - 1,)
    assert BY_TIME_AND_ID.decode(BY_TIME_AND_ID.encode(opened, ticket)) == (opened, ticket)


def test_todays_wm_cursors_stay_valid() -> None:
    """A cursor issued before the shared helper (a JSON list of ISO time and UUID text) decodes."""
    ticket = uuid.uuid4()
    old = raw(json.dumps(["2026-11-30T12:00:00+00:00", str(ticket)]))
    assert BY_TIME_AND_ID.decode(old)[1] == ticket


@pytest.mark.parametrize(
    ("cursor", "case"),
    [
        ("xyz", "not base64 of JSON"),
        ("\u00b9", "non-ASCII (%C2%B9)"),
        ("99999999999999999999", "digits that are not ours"),
        (raw("[99999999999999999999]"), "an integer beyond bigint"),
        (raw("[-9223372036854775809]"), "an integer below bigint"),
        (raw("[1e23]"), "a float"),
        (raw("[NaN]"), "not a number"),
        (raw("[true]"), "a boolean"),
        (raw('["1"]'), "text for an integer"),
        (raw("[1, 2]"), "too many parts"),
        (raw("[]"), "too few parts"),
        (raw('{"id": 1}'), "not a list"),
        (raw("[" * 5000 + "]" * 5000), "nested deeper than the parser goes"),
        ("A" * 600, "longer than any cursor we issue"),
        (base64.urlsafe_b64encode(b"\xff\xfe[1]").decode(), "not UTF-8"),
    ],
)
def test_a_malformed_id_cursor_is_a_422_naming_cursor(cursor: str, case: str) -> None:
    """Anything a client can put in ?cursor= is a ValidationFailed on the `cursor` field."""
    with pytest.raises(ValidationFailed) as caught:
        BY_ID.decode(cursor)
    assert [d.field for d in caught.value.details] == ["cursor"], case


@pytest.mark.parametrize(
    "key",
    [
        '["2026-11-30T12:00:00", "00000000-0000-0000-0000-000000000001"]',  # no offset
        '["0001-01-01T00:00:00+05:00", "00000000-0000-0000-0000-000000000001"]',  # overflows
        '["yesterday", "00000000-0000-0000-0000-000000000001"]',
        '["2026-11-30T12:00:00+00:00", "not-a-uuid"]',
        '["2026-11-30T12:00:00+00:00\\u0000", "00000000-0000-0000-0000-000000000001"]',
        "[1, 2]",
    ],
)
def test_a_malformed_time_and_id_cursor_is_a_422(key: str) -> None:
    """Bad times, offsets, UUIDs or a NUL character are refused the same way."""
    with pytest.raises(ValidationFailed):
        BY_TIME_AND_ID.decode(raw(key))


def test_encoding_a_key_of_the_wrong_shape_is_a_bug() -> None:
    """A None id (an unsaved row) or a missing part fails loudly instead of issuing a cursor."""
    with pytest.raises(TypeError):
        BY_ID.encode(None)
    with pytest.raises(TypeError):
        BY_TIME_AND_ID.encode(datetime.now(UTC))
