"""FastAPI dependencies of the WM: the request's session (the one commit point) and auth."""

from __future__ import annotations

import mmap
from collections.abc import AsyncIterator

from fastapi import Request
from pydantic import SecretStr

from ticketing_common.auth import identify_token, require_token
from ticketing_common.errors import PayloadTooLarge, UnsupportedMediaType

# The request's session, shared with the BE: one commit point, 503 when the commit fails.
from ticketing_common.web import SessionDep as SessionDep


def _ingest_token(request: Request) -> SecretStr:
    token: SecretStr = request.app.state.ingest_token
    return token


def _admin_token(request: Request) -> SecretStr:
    token: SecretStr = request.app.state.admin_token
    return token


def _metrics_token(request: Request) -> SecretStr:
    token: SecretStr = request.app.state.metrics_token
    return token


def _backend_token(request: Request) -> SecretStr:
    token: SecretStr = request.app.state.backend_token
    return token


# Operators may push too (replaying an aggregator export by hand); the aggregator's token
# opens nothing but the pushes.
require_ingest = require_token(_ingest_token, _admin_token)
require_admin = require_token(_admin_token)
# Prometheus gets a token that opens nothing else; operators may read /metrics too.
require_metrics = require_token(_metrics_token, _admin_token)
# The BEs' token opens their registration, heartbeat and reports, nothing else; an operator
# may register a BE by hand (a PUT with the admin token) but never report for one.
require_backend = require_token(_backend_token)
BACKEND = "backend"
identify_registrant = identify_token(backend=_backend_token, admin=_admin_token)


def _declared_length(request: Request, limit: int) -> int | None:
    """The Content-Length the client declared, 413 at once if it exceeds `limit`."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        return None
    if int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    return int(declared)


async def _limited_chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive, refused with 413 as soon as they pass `limit` (the
    declared length is the caller's to check first: _declared_length)."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
        yield chunk


async def read_body(request: Request, *, limit: int) -> bytearray:
    """The raw request body, 413 above `limit` (pushes: read_push_body).

    Read into one buffer that grows as bytes arrive: joining a list of chunks held the body
    twice. (Not sized from Content-Length up front: a client that declares the limit and
    sends nothing would hold that much memory per connection.)"""
    _declared_length(request, limit)
    body = bytearray()
    async for chunk in _limited_chunks(request, limit):
        body += chunk
    return body


class PushBody:
    """A push body in an anonymous private memory map, which the decoder gives back page by
    page as it goes (`release_before`): a 40 MB push is not held whole beside what its
    entries decode into (peak RSS, bench/ingest.py).

    Mapped at the declared length up front (a page costs memory only once written, so a
    client that declares much and sends little holds nothing); without one, at
    UNDECLARED_START and doubled as bytes arrive.
    """

    UNDECLARED_START = 8 * 2**20

    def __init__(self, declared: int | None) -> None:
        size = self.UNDECLARED_START if declared is None else declared
        self._map = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE)
        self._released = 0

    def append(self, chunk: bytes) -> None:
        end = self._map.tell() + len(chunk)
        if end > len(self._map):  # (the limit, checked as chunks arrive, bounds it)
            self._resize(max(end, 2 * len(self._map)))
        self._map.write(chunk)

    def finish(self) -> None:
        """Cut the map to the bytes received (a decoder reads the whole buffer)."""
        if 0 < self._map.tell() < len(self._map):
            self._resize(self._map.tell())

    @property
    def data(self) -> mmap.mmap | bytes:
        """The body's bytes (after `finish`)."""
        return self._map if self._map.tell() else b""

    def release_before(self, offset: int) -> None:
        """Give back the whole pages before `offset`: their bytes are never read again
        (reading one would give zeros)."""
        end = offset - offset % mmap.PAGESIZE
        if end > self._released:
            self._map.madvise(mmap.MADV_DONTNEED, self._released, end - self._released)
            self._released = end

    def _resize(self, size: int) -> None:
        """In place where the system can (Linux's mremap); else a new map and a copy (macOS
        has no mremap: Python raises SystemError there)."""
        try:
            self._map.resize(size)
        except (SystemError, OSError):
            received = self._map.tell()
            kept = min(received, size)
            moved = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
            moved.write(self._map[:kept])
            self._map.close()
            self._map = moved


async def read_push_body(request: Request, *, limit: int) -> PushBody:
    """A push's raw body (see PushBody), 413 above `limit`."""
    body = PushBody(_declared_length(request, limit))
    async for chunk in _limited_chunks(request, limit):
        body.append(chunk)
    body.finish()
    return body


def media_type(request: Request, *, accepted: tuple[str, ...]) -> str:
    """The request's media type (JSON when none is given), 415 when not in `accepted`."""
    value = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if value not in accepted:
        raise UnsupportedMediaType(
            f"content-type {value!r} is not accepted; use one of {', '.join(accepted)}"
        )
    return value
