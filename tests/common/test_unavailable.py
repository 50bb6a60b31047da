"""Whatever way the database is unreachable, a request gets the documented 503 `unavailable`
with Retry-After (the client resends), never a 500; a background step that will be retried
logs one WARNING line naming the outage, no traceback. A statement that fails on its own
merits is still a 500, and an ERROR with its traceback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ticketing_common.db import create_engine
from ticketing_common.errors import (
    database_reason,
    is_database_unavailable,
    log_retried_failure,
)
from ticketing_common.web import create_base_app


def _as_sqlalchemy_raises(error: asyncpg.PostgresError) -> DBAPIError:
    """A server's answer as SQLAlchemy hands it over: its asyncpg adapter's error, which
    carries the SQLSTATE and is caused by the driver's, inside a plain DBAPIError."""
    adapted = AsyncAdapt_asyncpg_dbapi.Error(str(error), error)
    adapted.__cause__ = error
    return DBAPIError("SELECT 1", {}, adapted)


UNAVAILABLE: dict[str, Callable[[], BaseException]] = {
    "refused": lambda: ConnectionRefusedError(111, "Connect call failed"),
    "unreachable": lambda: OSError(113, "No route to host"),
    "timeout": lambda: TimeoutError(),
    "operational": lambda: OperationalError("SELECT 1", {}, Exception("server closed")),
    # As SQLAlchemy raises a connection its dialect found closed.
    "interface": lambda: InterfaceError(
        "SELECT 1", {}, Exception("connection is closed"), connection_invalidated=True
    ),
    "pool": lambda: PoolTimeout("QueuePool limit reached"),
    "starting up": lambda: _as_sqlalchemy_raises(
        asyncpg.CannotConnectNowError("the database system is starting up")
    ),
    "too many connections": lambda: _as_sqlalchemy_raises(
        asyncpg.TooManyConnectionsError("sorry, too many clients already")
    ),
    # Raised by the driver itself where a service talks to asyncpg directly (big pushes).
    "lost mid-statement": lambda: asyncpg.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation"
    ),
    "closed": lambda: asyncpg.InterfaceError(
        "cannot call Connection.execute(): connection is closed"
    ),
}

NOT_UNAVAILABLE: dict[str, Callable[[], BaseException]] = {
    "unique violation": lambda: IntegrityError(
        "INSERT", {}, asyncpg.UniqueViolationError("duplicate key value")
    ),
    "syntax": lambda: _as_sqlalchemy_raises(asyncpg.PostgresSyntaxError("syntax error")),
    # asyncpg's InterfaceError is also the caller's mistake, through SQLAlchemy or not.
    "too many arguments": lambda: InterfaceError(
        "SELECT", {}, Exception("the number of query arguments cannot exceed 32767")
    ),
    "arguments mismatch": lambda: asyncpg.InterfaceError(
        "the server expects 1 argument for this query, 2 were passed"
    ),
    "bug": lambda: KeyError("backend"),
}


def _app_raising(failure: Callable[[], BaseException]) -> httpx.AsyncClient:
    app = create_base_app(title="t", description="", version="0")

    @app.get("/probe")
    async def probe() -> None:
        raise failure()

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


@pytest.mark.parametrize("name", list(UNAVAILABLE))
async def test_database_failures_are_503_with_retry_after(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each way of not reaching Postgres is a 503 `unavailable` with Retry-After, logged on
    one line."""
    async with _app_raising(UNAVAILABLE[name]) as client:
        response = await client.get("/probe")
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable"
    assert int(response.headers["retry-after"]) >= 1
    logged = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is None
    assert "\n" not in logged[0].getMessage()


@pytest.mark.parametrize("name", list(NOT_UNAVAILABLE))
async def test_other_failures_stay_500(name: str) -> None:
    """A statement that fails on its own merits is not an outage: no Retry-After invites a
    resend of what will fail again."""
    async with _app_raising(NOT_UNAVAILABLE[name]) as client:
        response = await client.get("/probe")
    assert response.status_code == 500, response.text
    assert response.json()["error"]["code"] == "internal_error"
    assert "retry-after" not in response.headers


async def test_a_terminated_connection_is_an_outage(wm_database_url: str) -> None:
    """The real thing: Postgres ends a session mid-use (a restart, an operator's
    pg_terminate_backend), and what SQLAlchemy raises on the next statement is classed as
    the database unavailable."""
    engine = create_engine(wm_database_url)
    try:
        async with engine.connect() as victim, engine.connect() as killer:
            pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await asyncio.sleep(0.2)
            with pytest.raises(DBAPIError) as raised:
                await victim.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    assert is_database_unavailable(raised.value), repr(raised.value)


async def test_a_client_side_mistake_is_not_an_outage(wm_database_url: str) -> None:
    """The real thing again: asyncpg's InterfaceError for a statement given the wrong number
    of arguments, on a healthy connection, is the caller's bug (a 500), not an outage."""
    connection = await asyncpg.connect(wm_database_url.replace("+asyncpg", ""))
    try:
        with pytest.raises(asyncpg.InterfaceError) as raised:
            await connection.execute("SELECT $1::int", 1, 2)
    finally:
        await connection.close()
    assert not is_database_unavailable(raised.value), repr(raised.value)


def test_a_connect_timeout_is_named_not_its_cancellation() -> None:
    """asyncpg's connect timeout is a TimeoutError caused by a CancelledError: the line names
    the timeout."""
    try:
        try:
            raise asyncio.CancelledError
        except asyncio.CancelledError as cancelled:
            raise TimeoutError from cancelled
    except TimeoutError as timeout:
        assert database_reason(timeout) == "TimeoutError"


def _failing(failure: BaseException, caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    caplog.clear()
    log = logging.getLogger("tests.retried")
    try:
        raise failure
    except BaseException:
        log_retried_failure(log, "pass %d failed; retrying", 3, extra={"backend": "be1"})
    (record,) = [r for r in caplog.records if r.name == "tests.retried"]
    return record


@pytest.mark.parametrize("name", list(UNAVAILABLE))
def test_a_retried_step_logs_an_outage_on_one_line(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    record = _failing(UNAVAILABLE[name](), caplog)
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    message = record.getMessage()
    assert message.startswith("pass 3 failed; retrying (database unavailable: ")
    assert "\n" not in message and "sqlalche.me" not in message
    assert record.__dict__["backend"] == "be1"


def test_a_retried_step_names_the_drivers_words(caplog: pytest.LogCaptureFixture) -> None:
    failure = UNAVAILABLE["starting up"]()
    message = _failing(failure, caplog).getMessage()
    assert message.endswith(
        "(database unavailable: CannotConnectNowError: the database system is starting up)"
    )


@pytest.mark.parametrize("name", list(NOT_UNAVAILABLE))
def test_a_retried_step_logs_anything_else_with_its_traceback(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    record = _failing(NOT_UNAVAILABLE[name](), caplog)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.getMessage() == "pass 3 failed; retrying"
