"""One line per event: its fields as key=value (text) or as keys (json), secrets scrubbed."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from ticketing_common.logging import JsonFormatter, ScrubbingFormatter


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("be.pipeline", logging.WARNING, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


def test_text_lines_end_with_the_event_fields() -> None:
    """ticket id, operation and reason follow the message; a value with spaces is quoted."""
    line = ScrubbingFormatter("%(levelname)s %(message)s").format(
        _record("revision ended in Error", ticket_id="t-1", operation="create", reason="HTTP 400")
    )
    expected = 'revision ended in Error ticket_id=t-1 operation=create reason="HTTP 400"'
    assert line == f"WARNING {expected}"


def test_json_lines_carry_the_fields_as_keys() -> None:
    """A log shipper reads one object per line with the event's fields at the top level."""
    line = JsonFormatter("be[be1]").format(_record("failover", backend="be1", moved=3))
    event = json.loads(line)
    assert event["service"] == "be[be1]" and event["message"] == "failover"
    assert event["backend"] == "be1" and event["moved"] == 3
    assert event["level"] == "WARNING"


@pytest.mark.parametrize("formatter", [ScrubbingFormatter("%(message)s"), JsonFormatter("wm")])
def test_secrets_in_fields_are_scrubbed(formatter: logging.Formatter) -> None:
    """A platform answer quoting a token or a password never reaches the log verbatim."""
    line = formatter.format(
        _record("login failed", reason="Authorization: Bearer s3cr3t-token password=hunter2")
    )
    assert "s3cr3t-token" not in line and "hunter2" not in line


def test_text_from_outside_cannot_forge_another_line() -> None:
    """An operator's name or a platform's error carrying a line break, a carriage return or
    a terminal escape: the event stays one line at the left margin (what follows a line
    break is indented), the other control characters are escapes, a field is quoted."""
    forged = "ana\n2026-12-03 04:00:00,000 WARNING wm x: processing resumed by root\r\x1b[2K"
    line = ScrubbingFormatter("%(levelname)s %(message)s").format(
        _record(f"paused by {forged}", actor=forged)
    )
    first, *rest = line.split("\n")
    assert first.startswith("WARNING paused by ana actor=")
    assert json.loads(first.split("actor=", 1)[1]) == forged
    assert rest == [
        "    2026-12-03 04:00:00,000 WARNING wm x: processing resumed by root\\u000d\\u001b[2K"
    ]


def test_a_traceback_keeps_its_lines_indented_under_its_event() -> None:
    """An exception's traceback keeps its lines, each indented under the event's line, so
    one quoting a platform's answer with a line break forges nothing either."""
    try:
        raise ValueError("boom\n2026-12-03 04:00:00,000 WARNING wm x: forged\u2028too")
    except ValueError:
        record = logging.LogRecord("wm", logging.ERROR, __file__, 1, "failed", None, None)
        record.exc_info = sys.exc_info()
    lines = ScrubbingFormatter("%(message)s").format(record).split("\n")
    assert lines[0] == "failed" and lines[1] == "    Traceback (most recent call last):"
    assert lines[-2:] == [
        "    ValueError: boom",
        "    2026-12-03 04:00:00,000 WARNING wm x: forged\\u2028too",
    ]
    assert all(line.startswith("    ") for line in lines[1:])
