"""The services' engine: it learns every array type it binds as its first connection
connects (not one catalog query per type the first time a statement meets it), later
connections share that lookup, and it pings a pooled connection only when it sat idle,
replacing one that died meanwhile."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.conftest import DatabaseFactory
from ticketing_common import db
from ticketing_common.db import (
    ARRAY_TYPES,
    HAND_ASSIGNED_OID_LIMIT,
    SharedTypeLookupConnection,
    create_engine,
    normalize_url,
)

# Every array type a statement of the services binds, one statement apiece, as a worker
# meets them over its first batches.
STATEMENTS = [
    (f"SELECT cardinality(CAST(:values AS {name}))", value)
    for name, value in zip(
        ARRAY_TYPES,
        [[1], [1], [1.5], [True], ["a"], ["b"], [None], [None], [b"x"]],
        strict=True,
    )
]


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every catalog lookup of unknown types that asyncpg makes (its one place for them),
    from an empty shared cache."""
    SharedTypeLookupConnection.forget_lookups()
    seen: list[object] = []
    original = asyncpg.Connection._introspect_types

    async def counted(self: asyncpg.Connection, typeoids: object, *rest: object) -> object:
        seen.append(typeoids)
        return await original(self, typeoids, *rest)

    monkeypatch.setattr(asyncpg.Connection, "_introspect_types", counted)
    yield seen
    SharedTypeLookupConnection.forget_lookups()


async def _run_each(engine: AsyncEngine, connections: int = 1) -> None:
    """Every statement on `connections` connections held at once: each a new one."""
    try:
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(connections):
                connection = await stack.enter_async_context(engine.connect())
                for sql, value in STATEMENTS:
                    assert (await connection.execute(text(sql), {"values": value})).scalar() == 1
    finally:
        await engine.dispose()


async def test_one_lookup_covers_every_array_type(
    database_factory: DatabaseFactory, lookups: list[object]
) -> None:
    await _run_each(create_engine(database_factory.empty()))
    assert len(lookups) == 1, lookups


async def test_later_connections_share_the_first_lookup(
    database_factory: DatabaseFactory, lookups: list[object]
) -> None:
    """Three connections to one database, then one to another: built-in types are the same
    in every database, so the first connection's lookup serves all four."""
    await _run_each(create_engine(database_factory.empty(), pool_size=3), 3)
    await _run_each(create_engine(database_factory.empty()))
    assert len(lookups) == 1, lookups


async def test_each_connection_looks_up_types_of_its_own_database(
    database_factory: DatabaseFactory, lookups: list[object]
) -> None:
    """A type a database created has an OID of that database: never taken from the cache."""
    url = database_factory.empty()
    engine = create_engine(url, pool_size=2)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TYPE mood AS ENUM ('calm', 'stormy')"))
        async with engine.connect() as first, engine.connect() as second:
            for connection in (first, second):
                sql = text("SELECT CAST(CAST(:values AS mood[]) AS text[])")
                got = (await connection.execute(sql, {"values": ["stormy", "calm"]})).scalar()
                assert got == ["stormy", "calm"]
    finally:
        await engine.dispose()
    own = [oids for oids in lookups if max(oids) >= HAND_ASSIGNED_OID_LIMIT]  # type: ignore[call-overload]
    assert len(own) == 2, lookups


async def test_without_it_each_array_type_costs_a_lookup(
    database_factory: DatabaseFactory, lookups: list[object]
) -> None:
    """The same statements on a plain engine: what the connect hook saves (and proof that
    the count above can fail)."""
    await _run_each(create_async_engine(normalize_url(database_factory.empty())))
    assert len(lookups) >= len(ARRAY_TYPES) - 1, lookups


async def _terminate(database_factory: DatabaseFactory, pid: int) -> None:
    admin = await asyncpg.connect(database_factory.server.sync_dsn("postgres"))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_back_in_the_pool_a_moment_ago_is_not_pinged(
    database_factory: DatabaseFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[object] = []
    original = db.ping

    async def counted(raw: asyncpg.Connection) -> None:
        pings.append(raw)
        await original(raw)

    monkeypatch.setattr(db, "ping", counted)
    engine = create_engine(database_factory.empty(), pool_size=1)
    try:
        first = await _backend_pid(engine)
        assert await _backend_pid(engine) == first
        assert pings == []
        monkeypatch.setattr(db, "PING_IF_IDLE_SECONDS", 0.0)
        assert await _backend_pid(engine) == first
        assert len(pings) == 1
    finally:
        await engine.dispose()


async def test_the_connection_handed_back_last_is_handed_out_next(
    database_factory: DatabaseFactory,
) -> None:
    """Three connections handed back in turn: the next caller gets the last one, which is
    still warm (taken in turn, it would get the one idle longest, and ping it)."""
    engine = create_engine(database_factory.empty(), pool_size=3)
    try:
        async with contextlib.AsyncExitStack() as stack:
            held = [await stack.enter_async_context(engine.connect()) for _ in range(3)]
            pids = [
                int((await c.execute(text("SELECT pg_backend_pid()"))).scalar_one()) for c in held
            ]
            for connection in held:
                await connection.close()
        assert len(set(pids)) == 3
        assert await _backend_pid(engine) == pids[-1]
        assert await _backend_pid(engine) == pids[-1]
    finally:
        await engine.dispose()


async def test_the_server_sends_keepalives_on_idle_pooled_connections(
    database_factory: DatabaseFactory,
) -> None:
    """The pool leaves connections idle for hours (last in, first out): the server probes
    them after a minute of silence, so nothing between the two forgets the flow."""
    engine = create_engine(database_factory.empty(), pool_size=1)
    try:
        async with engine.connect() as connection:
            idle = (await connection.execute(text("SHOW tcp_keepalives_idle"))).scalar_one()
        assert idle == "60"  # seconds (0 would be the operating system's default)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("pinged", [True, False])
async def test_a_pooled_connection_that_died_while_idle_is_replaced(
    database_factory: DatabaseFactory, monkeypatch: pytest.MonkeyPatch, pinged: bool
) -> None:
    """Postgres ends the pooled connection's session (as a restart does); the next caller
    gets a working connection when idle connections are pinged, and the error without."""
    monkeypatch.setattr(db, "PING_IF_IDLE_SECONDS", 0.0 if pinged else float("inf"))
    engine = create_engine(database_factory.empty(), pool_size=1)
    try:
        first = await _backend_pid(engine)
        await _terminate(database_factory, first)
        if pinged:
            assert await _backend_pid(engine) != first
        else:
            with pytest.raises(DBAPIError):
                await _backend_pid(engine)
    finally:
        await engine.dispose()


async def test_json_results_decode_to_the_values_stored(database_factory: DatabaseFactory) -> None:
    """json and jsonb columns come back as the values written, whatever decodes them."""
    value = {
        "cherwell": {"rec_id": "9a8b", "existing": True, "public_id": "100175"},
        "ñandú": [1, 2.5, -3, 12345678901234567890, None, "línea\nnueva", {"": []}],
    }
    engine = create_engine(database_factory.empty())
    try:
        async with engine.connect() as connection:
            for cast in ("jsonb", "json"):
                sql = f"SELECT CAST(:doc AS {cast})"
                got = (await connection.execute(text(sql), {"doc": json.dumps(value)})).scalar()
                assert got == value, cast
    finally:
        await engine.dispose()


async def test_only_hand_assigned_type_oids_are_shared(
    database_factory: DatabaseFactory, lookups: list[object]
) -> None:
    """Below HAND_ASSIGNED_OID_LIMIT a lookup is answered once per process; above it (a
    host's collations, information_schema's types: numbered per cluster) every time."""
    connection = await asyncpg.connect(
        database_factory.server.sync_dsn("postgres"), connection_class=SharedTypeLookupConnection
    )
    try:
        information_schema_type = await connection.fetchval(
            "SELECT 'information_schema.sql_identifier'::regtype::oid"
        )
        assert HAND_ASSIGNED_OID_LIMIT <= information_schema_type < 16384
        for _ in range(2):
            await connection._introspect_types([1016], 5)  # bigint[]
            await connection._introspect_types([information_schema_type], 5)
    finally:
        await connection.close()
    expected = [[1016], [information_schema_type], [information_schema_type]]
    assert [list(oids) for oids in lookups] == expected  # type: ignore[call-overload]
