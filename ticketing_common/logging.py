"""Logging set-up for every process of the system: one line per event, secrets scrubbed.

Secrets are kept out of logs by design (SecretStr settings, tokens never formatted), and the
filter below is the safety net: it masks bearer tokens, passwords and client secrets in any
message that still carries one (an exception text quoting a request, say).
"""

from __future__ import annotations

import logging
import re

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


class ScrubbingFormatter(logging.Formatter):
    """Scrubs the whole formatted line: message, exception traceback and stack alike.

    A traceback can quote a secret too (an HTTP error echoing a header, a driver error
    quoting a URL), so filtering the message alone is not enough.
    """

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def configure_logging(level: str = "INFO", *, service: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        ScrubbingFormatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
