"""FastAPI dependencies of the WM: the request's session (the one commit point) and auth."""

from __future__ import annotations

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


async def read_body(request: Request, *, limit: int) -> bytearray:
    """The raw request body, refused with 413 as soon as it exceeds `limit` bytes.

    Read into one buffer that grows as bytes arrive: joining a list of chunks held a 40 MB
    push twice. (Not sized from Content-Length up front: a client that declares the limit
    and sends nothing would hold that much memory per connection.)"""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
        body += chunk
    return body


def media_type(request: Request, *, accepted: tuple[str, ...]) -> str:
    """The request's media type (JSON when none is given), 415 when not in `accepted`."""
    value = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if value not in accepted:
        raise UnsupportedMediaType(
            f"content-type {value!r} is not accepted; use one of {', '.join(accepted)}"
        )
    return value
