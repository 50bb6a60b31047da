"""Cold connections: what each new pooled connection costs Postgres.

A service's pool opens its connections as load arrives (a start, a restart, a burst past the
idle ones), and Postgres pays for each: a server process, its catalogs read, and asyncpg's
lookup of the array types the services bind. Opens `--connections` connections through the
services' engine on a temporary embedded Postgres, each running one statement that binds
arrays, and prints the Postgres CPU they cost: with the lookup shared by the process's
connections (ticketing_common.db.SharedTypeLookupConnection) and with each connection
making its own (one, for every array type at once, as before item 42 of
docs/performance.md). The connections open one after another. The two alternate,
`--rounds` times each.

    .venv/bin/python -m bench.connections [--connections 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

import asyncpg
from sqlalchemy import text

from bench.support import cpu_seconds, scratch_postgres
from ticketing_common import embedded_pg
from ticketing_common.db import SharedTypeLookupConnection, create_engine

STATEMENT = text("SELECT cardinality(CAST(:ids AS bigint[])) + cardinality(CAST(:names AS text[]))")


async def open_connections(url: str, count: int, *, shared: bool) -> None:
    """`count` new connections held at once, each running STATEMENT; the lookups start from
    empty, as in a process that just started."""
    SharedTypeLookupConnection.forget_lookups()
    engine = create_engine(url, pool_size=count, max_overflow=0)
    try:
        connections = []
        for _ in range(count):
            if not shared:
                SharedTypeLookupConnection.forget_lookups()
            connection = await engine.connect()
            connections.append(connection)
            result = await connection.execute(STATEMENT, {"ids": [1, 2], "names": ["a"]})
            assert result.scalar() == 3
        for connection in connections:
            await connection.close()
    finally:
        await engine.dispose()


async def measure(server: embedded_pg.EmbeddedPostgres, args: argparse.Namespace) -> None:
    admin = await asyncpg.connect(server.sync_dsn("postgres"))
    try:
        await admin.execute("CREATE DATABASE bench_connections")
    finally:
        await admin.close()
    url = server.sync_dsn("bench_connections")
    costs: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for shared in (False, True):
            before = cpu_seconds(server.pid)
            await open_connections(url, args.connections, shared=shared)
            # The backends exit on dispose; their CPU is counted once the postmaster reaps them.
            await asyncio.sleep(0.5)
            costs[shared].append((cpu_seconds(server.pid) - before) / args.connections)
    for shared, label in ((False, "each connection looks up"), (True, "lookup shared")):
        per_connection = [seconds * 1000 for seconds in costs[shared]]
        print(
            f"{label:26} Postgres CPU per new connection: median "
            f"{statistics.median(per_connection):.1f} ms "
            f"({min(per_connection):.1f}-{max(per_connection):.1f}, {args.rounds} rounds of "
            f"{args.connections})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=20, help="a BE's pool holds 20")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with scratch_postgres("bench-connections-") as server:
        asyncio.run(measure(server, args))


if __name__ == "__main__":
    main()
