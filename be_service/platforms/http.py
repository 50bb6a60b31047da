"""What both platform adapters share: the token session, the outcome of a call, retries.

A call either fails as a whole (`CallFailure`, retryable or not) or returns per-item results;
the pipeline records both as attempts and decides from them (pipeline/policy.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx
import msgspec

from be_service.pipeline.steps import CallFailure, Cause, PlatformError, truncate

# Transient by nature: the same request may succeed later (CONTEXT.md §4).
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

_json_decoder = msgspec.json.Decoder()
_json_encoder = msgspec.json.Encoder()


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
        # Any other 4xx is about what was sent (CONTEXT.md §4: never retried).
        cause=Cause.platform if retryable else Cause.ticket,
    )


def failure_from_exception(exc: httpx.HTTPError) -> CallFailure:
    """Transport errors and timeouts are retryable; whether a create they interrupted was
    applied is settled by the search before the next create (the cherwell check step)."""
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


JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
# Renew a little before the platform's own expiry, so no call starts on a dying token.
_EXPIRY_MARGIN_SECONDS = 30.0


class CallObserver(Protocol):
    """Told of every HTTP call to a platform and of every login (metrics, health)."""

    def request(self, status: int | None, seconds: float, *, operation: str | None = None) -> None:
        """`status` None: no HTTP answer; `operation` None: the step being sent."""

    def login(self, *, ok: bool) -> None: ...


class Unobserved:
    """A CallObserver that ignores everything (tests and tools that build a client alone)."""

    def request(self, status: int | None, seconds: float, *, operation: str | None = None) -> None:
        return None

    def login(self, *, ok: bool) -> None:
        return None


class BearerSession:
    """The access token a platform client's workers share, and the calls made with it.

    One login at a time (the workers waiting for it reuse its token); the token is reused
    until `expires_in` (when the platform gives one) and renewed once when a call gets 401,
    as both platforms expect (CONTEXT.md §4).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        platform: str,
        token_url: str,
        form: dict[str, str],
        observer: CallObserver | None = None,
    ) -> None:
        self._http = http
        self._platform = platform
        self._observer = observer or Unobserved()
        self._token_url = token_url
        self._form = form
        self._token: str | None = None
        self._expires_at = float("inf")
        self._lock = asyncio.Lock()

    async def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
    ) -> Any:
        """The decoded JSON of a 200 answer; any other answer raises `PlatformError`."""
        token = await self._current()
        response = await self._send(method, url, token, content=content)
        if response.status_code == 401:
            token = await self._login(stale=token)
            response = await self._send(method, url, token, content=content)
        if response.status_code != 200:
            raise PlatformError(failure_from_response(response))
        return decode_json(response)

    async def _send(
        self,
        method: str,
        url: str,
        token: str,
        *,
        content: bytes | None,
    ) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await self._http.request(
                method,
                url,
                content=content,
                headers={**JSON_HEADERS, "Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            self._observer.request(None, time.perf_counter() - started)
            raise PlatformError(failure_from_exception(exc)) from exc
        self._observer.request(response.status_code, time.perf_counter() - started)
        return response

    async def _current(self) -> str:
        if self._token is not None and time.monotonic() < self._expires_at:
            return self._token
        return await self._login(stale=self._token)

    async def _login(self, *, stale: str | None) -> str:
        async with self._lock:
            # Another worker may have logged in while this one waited for the lock.
            if self._token is not None and self._token != stale:
                return self._token
            started = time.perf_counter()
            try:
                response = await self._http.post(self._token_url, data=self._form)
            except httpx.HTTPError as exc:
                self._observer.request(None, time.perf_counter() - started, operation="login")
                self._observer.login(ok=False)
                raise PlatformError(failure_from_exception(exc)) from exc
            elapsed = time.perf_counter() - started
            self._observer.request(response.status_code, elapsed, operation="login")
            if response.status_code != 200:
                # Whatever the status, a refused login is about the platform (credentials,
                # a locked account, its token endpoint), never about the tickets waiting.
                failure = failure_from_response(
                    response,
                    message=f"{self._platform} login failed with HTTP {response.status_code}",
                )
                self._observer.login(ok=False)
                raise PlatformError(replace(failure, retryable=True, cause=Cause.platform))
            data = decode_json(response)
            token = data.get("access_token") if isinstance(data, dict) else None
            if not token:
                self._observer.login(ok=False)
                raise PlatformError(
                    CallFailure(
                        message=f"{self._platform} login answered without access_token",
                        retryable=True,
                    )
                )
            expires_in = data.get("expires_in")
            self._observer.login(ok=True)
            self._token = str(token)
            self._expires_at = (
                time.monotonic() + max(float(expires_in) - _EXPIRY_MARGIN_SECONDS, 1.0)
                if expires_in
                else float("inf")
            )
            return self._token
