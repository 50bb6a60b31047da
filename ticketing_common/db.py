"""Database plumbing shared by WM and BE: metadata base, engine, sessions, database URLs.

Each service keeps its own tables on its own `MetaData` (see `make_model_base`), so the two
schemas never mix even when one process imports both (tests, `ticketing up`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

import asyncpg
import msgspec
from sqlalchemy import MetaData, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import registry
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common import embedded_pg
from ticketing_common.errors import database_reason, is_database_unavailable, log_retried_failure
from ticketing_common.logging import StartRefused

log = logging.getLogger(__name__)

# Stable constraint names make migrations reversible and autogenerate diffs empty.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def make_model_base(name: str) -> type[SQLModel]:
    """A SQLModel base class with its own registry and MetaData (one per service)."""
    reg = registry(metadata=MetaData(naming_convention=NAMING_CONVENTION))
    return type(name, (SQLModel,), {"__module__": __name__}, registry=reg)


def normalize_url(url: str) -> str:
    """Accept the usual spellings of a Postgres URL and select the asyncpg driver."""
    return re.sub(r"^(postgres|postgresql)(\+[a-z0-9]+)?://", "postgresql+asyncpg://", url)


def asyncpg_dsn(url: str) -> str:
    """The same URL without the SQLAlchemy driver suffix, for raw asyncpg connections."""
    return re.sub(r"^postgresql\+asyncpg://", "postgresql://", normalize_url(url))


def redact_url(url: str) -> str:
    """A URL safe to log: the password is replaced."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


_JSON = msgspec.json.Decoder()


def create_engine(
    url: str, *, pool_size: int = 10, max_overflow: int | None = None, **kwargs: Any
) -> AsyncEngine:
    # hide_parameters: a failed statement's error text must not quote its bind values,
    # which can be tokens (the backend registry stores intake tokens).
    # force_custom_plan: asyncpg prepares every statement, and Postgres would otherwise
    # settle on a generic plan made while a queue table was nearly empty; the claim queries
    # then crawl for seconds once thousands of rows arrive (measured: 10 s+ per claim).
    # pool_use_lifo: the connection handed back last is handed out next. Taken in turn
    # (the default), each of a BE's 19 connections sat idle past PING_IF_IDLE_SECONDS
    # between two uses under full load, so two checkouts in three paid a ping; last in,
    # first out keeps as many in use as are needed at once and leaves the rest idle
    # (docs/performance.md, item 52). Idle for hours, then, on a quiet night: the server
    # sends TCP keepalives on them after a minute of silence, so a firewall or NAT between
    # the two does not forget the flow (the checkout would wait out the ping's timeout).
    engine = create_async_engine(
        normalize_url(url),
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_use_lifo=True,
        hide_parameters=True,
        connect_args={
            "server_settings": {
                "plan_cache_mode": "force_custom_plan",
                "tcp_keepalives_idle": "60",
            },
            "connection_class": SharedTypeLookupConnection,
        },
        # json/jsonb results (a BE reads two per revision it moves): 6 us each with
        # json.loads, 1.4 us with msgspec, the same values.
        json_deserializer=_JSON.decode,
        **kwargs,
    )
    event.listen(engine.sync_engine, "connect", _learn_array_types)
    event.listen(engine.sync_engine, "checkin", _note_checkin)
    event.listen(engine.sync_engine, "checkout", _ping_if_idle)
    return engine


# A pooled connection that sat idle this long is pinged before it is handed out, so one
# that died meanwhile (a Postgres restart, a dropped TCP session) is replaced instead of
# failing the caller's first statement. SQLAlchemy's pool_pre_ping pinged every checkout
# with three round trips (BEGIN, the ping, ROLLBACK): 3-5 % of a busy WM's or BE's CPU, for
# connections handed back a few milliseconds earlier. A connection that dies while in use
# fails that transaction either way; the callers retry (the pipeline) or answer 503.
PING_IF_IDLE_SECONDS = 1.0


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    checked_in_at = record.info.get("checked_in_at")
    if checked_in_at is None or time.monotonic() - checked_in_at < PING_IF_IDLE_SECONDS:
        return  # new, or just handed back
    try:
        dbapi_connection.run_async(ping)
    except Exception as exc:
        # The pool discards this connection and hands out another (a new one if need be).
        raise DisconnectionError(f"pooled connection is gone: {exc}") from exc


async def ping(raw: asyncpg.Connection) -> None:
    # An empty statement: nothing parsed. Bounded: a half-open TCP session would otherwise
    # hold the checkout until the kernel gives up on it.
    await raw.fetchrow(";", timeout=5.0)


# The array types the services bind (`unnest(CAST(:ids AS bigint[]), …)` and `= ANY(…)`).
# asyncpg has no built-in codec for them: it looks each one up in pg_type the first time a
# connection prepares a statement that uses it, a recursive catalog query. Statements met
# them one or two at a time, so every connection ran that query five to eight times during
# its first minutes of load (the e2e run: 29 times per BE database, ~1.7 s of Postgres
# statement time); this names them all once, as it connects, and the connection class below
# answers that lookup from the first connection's for every later one.
ARRAY_TYPES = (
    "bigint[]",
    "integer[]",
    "double precision[]",
    "boolean[]",
    "text[]",
    "varchar[]",
    "uuid[]",
    "timestamptz[]",
    "bytea[]",
)
_ARRAY_TYPES_PROBE = "SELECT " + ", ".join(
    f"CAST(${n} AS {name})" for n, name in enumerate(ARRAY_TYPES, start=1)
)


def _learn_array_types(dbapi_connection: Any, _record: Any) -> None:
    """Prepare one statement that uses every array type: one catalog lookup per process
    (SharedTypeLookupConnection), not one per type."""
    dbapi_connection.run_async(lambda raw: raw.prepare(_ARRAY_TYPES_PROBE))


# Objects whose OIDs Postgres assigns by hand have OIDs below this (FirstGenbkiObjectId):
# the same in every cluster of a server version. Above it, initdb numbers what depends on
# the host (its locales' collations come before information_schema's types), and a type a
# migration creates has an OID of its own database: their lookups are never shared. Every
# type the services bind is below 4 000.
HAND_ASSIGNED_OID_LIMIT = 10000


class _NoAnonymousStatement:
    """What a shared lookup reports having run: nothing, so the statement asyncpg prepared
    before it is still there (asyncpg re-parses its statement when a lookup ran unnamed)."""

    name = "shared type lookup"


class SharedTypeLookupConnection(asyncpg.Connection):
    """An asyncpg connection that shares its catalog lookups of built-in types with every
    other connection of the process.

    The lookup is cheap to run and dear to plan on a new server process, which loads the
    catalogs it reads first: 15-22 ms of planning per connection in the e2e run (19
    connections per BE, about 0.9 s of Postgres time in the run's first seconds), and a new
    connection's Postgres CPU 18 -> 5.5 ms shared (`bench.connections`). Built-in types'
    rows are the same in every database, so the first connection's answer serves the rest
    (connections opened while that first lookup runs make their own); any other type is
    looked up by each connection as asyncpg does (HAND_ASSIGNED_OID_LIMIT).
    """

    # (server version, the type OIDs asked for) -> the lookup's rows.
    _builtin_lookups: ClassVar[dict[tuple[Any, frozenset[int]], Any]] = {}

    async def _introspect_types(self, typeoids: Any, *rest: Any) -> Any:
        """asyncpg calls this for every type a statement uses that it has no codec for."""
        oids = frozenset(typeoids)
        if not oids or max(oids) >= HAND_ASSIGNED_OID_LIMIT:
            return await self._look_up(typeoids, *rest)
        key = (self.get_server_version(), oids)
        rows = self._builtin_lookups.get(key)
        if rows is not None:
            return rows, _NoAnonymousStatement()
        rows, statement = await self._look_up(typeoids, *rest)
        self._builtin_lookups[key] = rows
        return rows, statement

    async def _look_up(self, typeoids: Any, *rest: Any) -> Any:
        # asyncpg's own lookup; its type stubs leave its private methods out.
        return await super()._introspect_types(typeoids, *rest)  # type: ignore[misc]

    @classmethod
    def forget_lookups(cls) -> None:
        """Tests and benchmarks: start again from an empty cache, as a new process does."""
        cls._builtin_lookups.clear()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """The one transaction boundary of a request or a worker step: commit or roll back."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def ensure_database(url: str) -> None:
    """Create the database named in `url` when it does not exist yet (race-safe)."""
    dsn = asyncpg_dsn(url)
    head, _, name = dsn.rpartition("/")
    name = name.split("?", 1)[0]
    conn = await asyncpg.connect(f"{head}/postgres")
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # Another process of the system may create it first; that is fine.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


class DatabaseUnreachable(StartRefused):
    """The database could not be reached within the start-up's wait."""


async def wait_for_database(
    engine: AsyncEngine, *, url: str, timeout_seconds: float, max_pause_seconds: float = 5.0
) -> None:
    """Return once the database answers; a start-up waits here for one that is not up yet
    (a host boots the services and Postgres together; a Postgres restart meets a service
    restart) instead of exiting with a traceback. One WARNING line per try; after
    `timeout_seconds` (each try is cut at the deadline too), DatabaseUnreachable saying where
    and why. SIGINT or SIGTERM ends the wait at once: uvicorn only notes a signal while the
    start-up runs. What the server answers and waiting cannot mend (a wrong password, a
    missing database) is raised at once; a wrong host or port looks like a server not up yet
    and is waited out."""
    with _stop_signals_end_the_wait() as stopped_by:
        try:
            await _retry_until_answered(engine, url, timeout_seconds, max_pause_seconds)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not stopped_by or current is None:
                raise
            current.uncancel()
            raise DatabaseUnreachable(
                f"stopped by {stopped_by[0].name} while waiting for the database at "
                f"{redact_url(url)}"
            ) from None


async def _retry_until_answered(
    engine: AsyncEngine, url: str, timeout_seconds: float, max_pause_seconds: float
) -> None:
    deadline = time.monotonic() + timeout_seconds
    pause = 0.5
    while True:
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 1.0)):
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
            return
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            reason = database_reason(exc)
        left = deadline - time.monotonic()
        if left <= 0:
            raise DatabaseUnreachable(
                f"the database at {redact_url(url)} was unreachable for "
                f"{timeout_seconds:g} s: {reason}"
            )
        pause = min(pause, left)
        log.warning(
            "the database at %s is not reachable yet (%s); trying again in %.1f s",
            redact_url(url),
            reason,
            pause,
        )
        await asyncio.sleep(pause)
        pause = min(pause * 2, max_pause_seconds)


@contextlib.contextmanager
def _stop_signals_end_the_wait() -> Iterator[list[signal.Signals]]:
    """While the block runs, SIGINT and SIGTERM cancel the task running it (then go to the
    handler they had, uvicorn's, which notes them and exits once the start-up has failed);
    the list holds the signal that came. Signals reach the main thread only: elsewhere (a
    server in a test's thread) this does nothing."""
    came: list[signal.Signals] = []
    task = asyncio.current_task()
    if threading.current_thread() is not threading.main_thread() or task is None:
        yield came
        return
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def stop(number: int, frame: FrameType | None) -> None:
        came.append(signal.Signals(number))
        loop.call_soon_threadsafe(task.cancel)
        handler = previous[signal.Signals(number)]
        if callable(handler):
            handler(number, frame)

    for sig in previous:
        signal.signal(sig, stop)
    try:
        yield came
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def resolve_database_url(
    configured: str | None, *, data_dir: Path, database: str
) -> tuple[str, embedded_pg.EmbeddedPostgres | None]:
    """The URL to use: the configured one, or a database on the embedded server.

    Returns the embedded server too when this call started it, so that its owner stops it.
    """
    if configured:
        return normalize_url(configured), None
    server = embedded_pg.ensure_running(data_dir)
    url = server.url(database)
    await ensure_database(url)
    return url, server if server.started_here else None


# The rows of the smallest of these tables as Postgres last counted them (an ANALYZE, ours
# or autovacuum's, or a VACUUM); -1, never counted, reads as 0.
_SMALLEST_TABLE = text(
    "SELECT min(greatest(reltuples, 0)) FROM pg_class "
    "WHERE oid = ANY(CAST(CAST(:tables AS text[]) AS regclass[]))"
)


class StatisticsRefresher:
    """ANALYZE a service's busiest tables right after bulk writes that changed them enough,
    at most every so often.

    Autovacuum analyses a table a minute or more after it changed; until then the planner
    plans for what it saw last. After the first push into an empty outbox (a new install,
    an outage's backlog) that was an empty table: the claims' key probes became scans,
    0.7 s per claim at 1 000 rows and growing with the square of the backlog (measured).
    ANALYZE takes no lock that blocks reads or writes.

    "Enough" is autovacuum's own measure (autovacuum_analyze_scale_factor), met at once
    instead of a minute later: the rows written since the last refresh add up to a tenth of
    the smallest table's rows as Postgres last counted them (so a table that retention
    shrank, and autovacuum counted again, is judged by its size now), and to `min_rows`.
    Judged by `min_rows` alone, a BE fed batches of 500 analysed its revisions every
    `min_interval` while a flow lasted, 0.5-0.8 s of Postgres's time a time at a million
    rows, and the WM's three tables took 1.1-1.6 s (bench.scale prints both;
    docs/performance.md item 49).
    """

    GROWTH_SHARE = 0.1

    def __init__(
        self, engine: AsyncEngine, tables: tuple[str, ...], *, min_rows: int, min_interval: float
    ) -> None:
        self._engine = engine
        self._tables = tables
        self._min_rows = min_rows
        self._min_interval = min_interval
        self._last = float("-inf")
        self._written = 0  # rows written since the last refresh (or the start)

    async def due(self, rows: int) -> bool:
        """Whether writing `rows` (after what was written since the last refresh) calls for
        a refresh now; if so, claims it. Past `min_rows`, asks Postgres for the tables'
        size: one catalog read per bulk write."""
        self._written += rows
        if self._written < self._min_rows or not self._interval_passed():
            return False
        try:
            async with self._engine.connect() as connection:
                found = await connection.execute(_SMALLEST_TABLE, {"tables": list(self._tables)})
                table_rows = float(found.scalar_one() or 0.0)
        except Exception:
            # Never the write's failure: its rows are stored; the next write asks again.
            log_retried_failure(log, "table sizes not read after a bulk write")
            return False
        if self._written < self.GROWTH_SHARE * table_rows or not self._interval_passed():
            return False  # (the second look: another write claimed it during the read)
        self._last = time.monotonic()
        self._written = 0
        return True

    def _interval_passed(self) -> bool:
        return time.monotonic() - self._last >= self._min_interval

    async def refresh(self) -> None:
        """Run in the background, after the commit; a failure leaves it to autovacuum."""
        try:
            async with self._engine.begin() as connection:
                for table in self._tables:
                    await connection.exec_driver_sql(f"ANALYZE {table}")
        except Exception:
            log_retried_failure(log, "table statistics not refreshed after a bulk write")
