"""One error shape for every 4xx/5xx both services return.

    {"error": {"code": "validation_error", "message": "...",
               "details": [{"field": "entries[3].samples[0].at", "message": "..."}]}}

Domain exceptions carry their HTTP status; `install_error_handlers` renders them, FastAPI's
own validation errors and unexpected exceptions in that shape.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErrorDetail:
    field: str
    message: str


class DomainError(Exception):
    """Base of every error a client can cause or should see, with its HTTP status."""

    status_code = 400
    code = "bad_request"
    # Seconds a client should wait before it tries again (a Retry-After header), if any.
    retry_after_seconds: int | None = None

    def __init__(self, message: str, *, details: list[ErrorDetail] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class ValidationFailed(DomainError):
    status_code = 422
    code = "validation_error"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class NotStored(DomainError):
    """The request's transaction could not commit: nothing was stored, the client may resend."""

    status_code = 503
    code = "not_stored"
    retry_after_seconds = 1


class Unavailable(DomainError):
    """A dependency of ours (the database) is unreachable right now: retry later."""

    status_code = 503
    code = "unavailable"
    retry_after_seconds = 5


# What a request meets when the database is down or restarting: the driver cannot connect
# (asyncpg raises OSError: refused, unreachable, timed out) or loses its connection
# (SQLAlchemy's OperationalError/InterfaceError), or the pool has none to give. Transient
# and ours: a 503 with Retry-After, so that the aggregator and the WM resend.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    OperationalError,
    InterfaceError,
    PoolTimeout,
)


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(DomainError):
    status_code = 415
    code = "unsupported_media_type"


class Unauthorized(DomainError):
    status_code = 401
    code = "unauthorized"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


def error_body(code: str, message: str, details: list[ErrorDetail] | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": [{"field": d.field, "message": d.message} for d in details or []],
        }
    }


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'entries', 3, 'at') -> 'entries[3].at' (the request part is dropped for body)."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


async def _domain_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else {}
    if exc.retry_after_seconds is not None:
        headers["Retry-After"] = str(exc.retry_after_seconds)
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details),
        status_code=exc.status_code,
        headers=headers or None,
    )


async def _request_validation_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [ErrorDetail(_loc_to_field(e["loc"]), e["msg"]) for e in exc.errors()]
    summary = "; ".join(f"{d.field}: {d.message}" for d in details[:5])
    return JSONResponse(
        error_body("validation_error", f"invalid request: {summary}", details), status_code=422
    )


async def _http_exception_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        error_body(f"http_{exc.status_code}", str(exc.detail)),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    log.warning(
        "database unavailable on %s %s: %s", request.method, request.url.path, exc, exc_info=exc
    )
    answer = Unavailable("the database is unavailable; nothing was stored, retry later")
    return await _domain_error_handler(request, answer)


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the log; the client gets no internals.
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error_handler)
    app.add_exception_handler(RequestValidationError, _request_validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, _unavailable_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
