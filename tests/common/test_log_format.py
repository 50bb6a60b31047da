"""One line per event: its fields as key=value (text) or as keys (json), secrets scrubbed."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Iterator

import pytest

from ticketing_common.db import DatabaseUnreachable
from ticketing_common.logging import JsonFormatter, ScrubbingFormatter, configure_logging


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


@pytest.mark.parametrize("formatter", [ScrubbingFormatter("%(message)s"), JsonFormatter("wm")])
def test_uvicorns_coloured_copy_of_its_message_is_not_a_field(
    formatter: logging.Formatter,
) -> None:
    """uvicorn gives some records an extra `color_message` (the message with terminal
    colours) for its own formatter; it is not an event field of ours."""
    line = formatter.format(
        _record("Started server process [%d]", color_message="Started \x1b[36m%d\x1b[0m")
    )
    assert "color_message" not in line and "\x1b" not in line and "\\u001b" not in line


def _start_failure_as_uvicorn_logs_it(exc: Exception) -> logging.LogRecord:
    """What uvicorn logs when a start-up raises: Starlette's traceback text as the message."""
    try:
        raise exc
    except Exception:
        text = traceback.format_exc()
    captured: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = captured.append  # type: ignore[method-assign]
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addHandler(capture)
    try:
        uvicorn_error.error(text)
    finally:
        uvicorn_error.removeHandler(capture)
    return captured[0]


@pytest.fixture
def process_logging() -> Iterator[None]:
    """Logging configured as a service process configures it, this process's put back after."""
    root, uvicorn_error = logging.getLogger(), logging.getLogger("uvicorn.error")
    handlers, level, filters = root.handlers[:], root.level, uvicorn_error.filters[:]
    configure_logging(service="wm")
    yield
    root.handlers[:], uvicorn_error.filters[:] = handlers, filters
    root.setLevel(level)


@pytest.mark.usefixtures("process_logging")
def test_a_start_refused_is_one_line_and_another_failure_keeps_its_traceback() -> None:
    """A database out of reach at start says so in one line (it was 50 of traceback, the
    reason on the last); a failure of any other kind keeps its traceback."""
    reason = "the database at postgresql://wm:***@db/wm was unreachable for 60 s: refused"
    refused = _start_failure_as_uvicorn_logs_it(DatabaseUnreachable(reason))
    assert refused.getMessage() == reason
    broken = _start_failure_as_uvicorn_logs_it(KeyError("settings"))
    assert broken.getMessage().startswith("Traceback (most recent call last):")
    assert broken.getMessage().rstrip().endswith("KeyError: 'settings'")
