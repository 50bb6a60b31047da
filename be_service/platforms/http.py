"""What both platform adapters share: the outcome of one call and the retry predicate.

A call either fails as a whole (`CallFailure`, retryable or not) or returns per-item results;
the pipeline records both as attempts and decides from them (pipeline/retry.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import msgspec

# Transient by nature: the same request may succeed later (CONTEXT.md §4).
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
RESPONSE_KEEP_CHARS = 1000

_json_decoder = msgspec.json.Decoder()
_json_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class CallFailure:
    """A whole call that did not give per-item answers (transport error, non-2xx, bad body)."""

    message: str
    retryable: bool
    http_status: int | None = None
    response: str | None = None
    retry_after: float | None = None


class PlatformError(Exception):
    """Raised inside an adapter to abort a call with a `CallFailure`."""

    def __init__(self, failure: CallFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def truncate(text: str | None, limit: int = RESPONSE_KEEP_CHARS) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + "…"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def failure_from_response(response: httpx.Response, *, message: str | None = None) -> CallFailure:
    status = response.status_code
    text = response.text
    retryable = status in RETRYABLE_STATUSES or (
        # Salesforce reports API limits as 403; they clear by themselves.
        status == 403 and "REQUEST_LIMIT_EXCEEDED" in text
    )
    return CallFailure(
        message=message or f"HTTP {status}: {truncate(text, 300)}",
        retryable=retryable,
        http_status=status,
        response=truncate(text),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def failure_from_exception(exc: httpx.HTTPError) -> CallFailure:
    """Transport errors and timeouts are retryable; whether a create they interrupted was
    applied is settled by the search before the next create (pipeline/sender.py)."""
    return CallFailure(
        message=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
        retryable=True,
    )


def decode_json(response: httpx.Response) -> Any:
    """The JSON body, or a retryable failure naming the problem: a garbled 2xx body is a
    transient fault of the platform or the path to it (CONTEXT.md §4), not of the request."""
    try:
        return _json_decoder.decode(response.content)
    except msgspec.DecodeError as exc:
        raise PlatformError(
            CallFailure(
                message=f"invalid JSON from the platform: {exc}",
                retryable=True,
                http_status=response.status_code,
                response=truncate(response.text),
            )
        ) from exc


def encode_json(body: Any) -> bytes:
    return _json_encoder.encode(body)
