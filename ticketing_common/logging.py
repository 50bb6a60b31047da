"""Logging set-up for every process of the system: one line per event, secrets scrubbed.

An event names what it is about with `extra=` fields (ticket_id, dedup_key, backend,
platform, operation, reason, …): the text format appends them as `key=value`, the JSON
format (`*_LOG_FORMAT=json`, for a log shipper) makes them keys of the line's object.

Secrets are kept out of logs by design (SecretStr settings, tokens never formatted), and the
filter below is the safety net: it masks bearer tokens, passwords and client secrets in any
message that still carries one (an exception text quoting a request, say).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

_SECRET_PATTERNS = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    (
        re.compile(
            r"(?i)((?:password|client_secret|refresh_token|access_token|token)[\"']?\s*[=:]\s*[\"']?)"
            r"[^\s&\"',}]+"
        ),
        r"\1***",
    ),
    (re.compile(r"://([^:/@\s]+):[^@\s]*@"), r"://\1:***@"),
]


def scrub(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# Attributes every LogRecord has; anything else on a record came from `extra=`, but
# uvicorn's own `color_message` (the message with terminal colours, for its formatter).
_NOT_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record, in the order they were given."""
    return {k: v for k, v in vars(record).items() if k not in _NOT_FIELDS and not k.startswith("_")}


class ScrubbingFormatter(logging.Formatter):
    """Scrubs the whole formatted line: message, exception traceback and stack alike.

    A traceback can quote a secret too (an HTTP error echoing a header, a driver error
    quoting a URL), so filtering the message alone is not enough.

    Only this format's own line starts at the left margin: the message's further lines and
    a traceback's are indented, and other control characters (a carriage return, a terminal
    escape, a Unicode line separator) written as escapes, so that text from outside (an
    operator's name, an entity id, a platform's error quoted by an exception) cannot forge a
    line that reads as another event.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _inert(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return _INDENT + _inert(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _INDENT + _inert(super().formatStack(stack_info))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = event_fields(record)
        if fields:
            head, newline, tail = line.partition("\n")
            pairs = " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
            line = f"{head} {pairs}{newline}{tail}"
        return scrub(line)


# Control characters as escapes, but tab: C0, DEL and C1, the Unicode line and paragraph
# separators (str.splitlines splits there too) and the bidirectional overrides (they can
# make a line read as another on a terminal). A line break starts an indented line.
_INDENT = "    "
_CONTROLS = (
    *range(0x20),
    *range(0x7F, 0xA0),
    *range(0x2028, 0x202F),  # the two separators, then the bidirectional embeddings
    *range(0x2066, 0x206A),  # and isolates
)
_INERT = {c: f"\\u{c:04x}" for c in _CONTROLS if c != 0x09}
_INERT[0x0A] = "\n" + _INDENT


def _inert(text: str) -> str:
    return text.translate(_INERT)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, service, logger, message, the event's fields
    and the traceback if any; scrubbed like the text format."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
            **event_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return scrub(json.dumps(line, default=str, ensure_ascii=False))


def _text_value(value: Any) -> str:
    """A field's value as one word: quoted (JSON) if empty or holding a space or a control
    character."""
    text = str(value)
    plain = text and " " not in text and text.isprintable()
    return text if plain else _inert(json.dumps(text, ensure_ascii=False))


class StartRefused(RuntimeError):
    """A start that cannot go on for a reason fixed outside the code (its database out of
    reach, say), which its message says in full: logged as that one line, not a traceback."""


def _start_refusal_in_one_line(record: logging.LogRecord) -> bool:
    """A logging filter: Starlette hands uvicorn a failed start-up as the traceback's text,
    which uvicorn logs as a message (50 lines for a database out of reach, the reason on the
    last). For a StartRefused, the message becomes that reason alone."""
    text = record.msg
    if isinstance(text, str) and text.startswith("Traceback (most recent call last):"):
        last = text.rstrip().rpartition("\n")[2]
        for refusal in _with_subclasses(StartRefused):
            prefix = f"{refusal.__module__}.{refusal.__qualname__}: "
            if last.startswith(prefix):
                record.msg, record.args = last[len(prefix) :], ()
                break
    return True


def _with_subclasses(cls: type[StartRefused]) -> list[type[StartRefused]]:
    return [cls, *(found for sub in cls.__subclasses__() for found in _with_subclasses(sub))]


def configure_logging(level: str = "INFO", *, service: str, fmt: LogFormat = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter(service)
        if fmt == "json"
        else ScrubbingFormatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.error").addFilter(_start_refusal_in_one_line)
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
