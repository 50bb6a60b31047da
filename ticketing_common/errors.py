"""One error shape for every 4xx/5xx both services return.

    {"error": {"code": "validation_error", "message": "...",
               "details": [{"field": "entries[3].samples[0].at", "message": "..."}]}}

Domain exceptions carry their HTTP status; `install_error_handlers` renders them, FastAPI's
own validation errors and unexpected exceptions in that shape.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
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


# What a request or a background step meets when the database is down or restarting, by
# type alone: the driver cannot connect (asyncpg raises OSError: refused, unreachable, timed
# out), SQLAlchemy's OperationalError (the DBAPI's class for a failed connection or server),
# or the pool has none to give. OSError is the database's here because nothing else raises
# it this far: the HTTP clients turn theirs into httpx errors, which every call site catches.
# Not InterfaceError: asyncpg raises it for client-side bugs too (too many arguments, another
# operation in progress); a lost connection is recognised in `is_database_unavailable`.
# Transient and ours: a request gets a 503 with Retry-After, so that the aggregator and the WM
# resend; a background step logs one line and retries (`log_retried_failure`).
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OSError, OperationalError, PoolTimeout)

# Server answers that say "not now" rather than "wrong": SQLSTATE class 08 (connection
# exception), 57P01-57P03 (a shutdown, or "the database system is starting up") and 53300 (too
# many connections). SQLAlchemy wraps asyncpg's as a plain DBAPIError, which on its type alone
# is indistinguishable from a bug's.
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be reached right now (retry later), as opposed
    to a statement that failed on its own merits."""
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return True
    if isinstance(exc, DBAPIError):
        # SQLAlchemy asks the dialect whether the connection died (for asyncpg: is it closed).
        return exc.connection_invalidated or (
            exc.orig is not None and is_database_unavailable(exc.orig)
        )
    if isinstance(exc, asyncpg.InterfaceError):
        # Raw asyncpg (the bulk writes): a connection closed under it; its other
        # InterfaceErrors are the caller's mistakes.
        return "connection is closed" in str(exc)
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES)


def database_reason(exc: BaseException) -> str:
    """The driver's own words, on one line: SQLAlchemy's text adds the statement and a link."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    # SQLAlchemy's asyncpg adapter wraps the driver's error: name that one. (Not any cause: a
    # connect timeout is a TimeoutError caused by a CancelledError.)
    if isinstance(cause.__cause__, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
        cause = cause.__cause__
    words = " ".join(str(cause).split())[:200]
    return f"{type(cause).__name__}: {words}" if words else type(cause).__name__


def log_retried_failure(
    logger: logging.Logger, message: str, *args: object, extra: Mapping[str, object] | None = None
) -> None:
    """Log the exception being handled by a step that will be retried. The database away is
    expected (a restart, a failover) and says nothing new at every retry: one WARNING line
    naming it, no traceback, or a restart prints screens of them at 3 a.m. Anything else may
    be a bug: ERROR with its traceback."""
    exc = sys.exc_info()[1]
    if exc is not None and is_database_unavailable(exc):
        reason = database_reason(exc)
        logger.warning(f"{message} (database unavailable: %s)", *args, reason, extra=extra)
    else:
        logger.exception(message, *args, extra=extra)


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


# Every exception type `database_error_handler` answers (an app that answers some paths in
# another shape registers its own handler for the same types: wm_service/console/routes.py).
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    *DATABASE_UNAVAILABLE,
    DBAPIError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def log_database_unavailable(request: Request, exc: BaseException) -> None:
    """One line: the outage is the news, not the stack that met it."""
    log.warning(
        "database unavailable on %s %s: %s",
        request.method,
        request.url.path,
        database_reason(exc),
    )


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    if not is_database_unavailable(exc):
        return await _unexpected_handler(request, exc)
    log_database_unavailable(request, exc)
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
    for database_error in DATABASE_ERRORS:
        app.add_exception_handler(database_error, database_error_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
