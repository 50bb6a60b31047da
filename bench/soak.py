"""Soak: weeks of pushes in minutes, against a short retention; the tables must level off.

Runs the WM, one BE and the emulators in this process (each on its own uvicorn thread, real
HTTP between them) on a temporary embedded Postgres, with one simulated clock for both
services: every push moves it on by `--step-hours`. Elements fall sick and recover on a fixed
(seeded) pattern, so tickets keep opening, updating and clearing; `--chronic` of them stay sick
throughout (their tickets stay open, a revision each push). After each simulated day the
pipeline is drained; on days `--report-days` it prints the rows and on-disk size of every
table of both databases. With `--retention-days` 3 over 35 days, the counts from day ~5 on
stay within a band instead of growing with the days.

    .venv/bin/python -m bench.soak [--days 35] [--retention-days 3] [--elements 300]
                                   [--chronic 10]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from pydantic import SecretStr

from be_service.config import BESettings
from be_service.main import create_app as create_be
from emulators.app import create_app as create_emulators
from emulators.config import EmulatorSettings
from tests.support.servers import serve_in_thread
from ticketing_common import embedded_pg
from ticketing_common.db import asyncpg_dsn, ensure_database
from wm_service.config import WMSettings
from wm_service.main import create_app as create_wm

TOKENS = {"ingest": "soak-ingest", "admin": "soak-admin", "backend": "soak-backend"}
BE_TOKENS = {"intake": "soak-intake", "admin": "soak-be-admin", "control": "soak-control"}


@dataclass
class SimClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


def sick(element: int, hour: int, seed: int, chronic: int) -> bool:
    """Each element has its own period and phase: sick for a few hours, then healthy; the
    first `chronic` ones are sick all the time."""
    if element < chronic:
        return True
    rng = random.Random(seed * 1_000_003 + element)
    period = rng.randint(30, 120)
    return (hour + rng.randint(0, period)) % period < rng.randint(2, 8)


def push_body(clock: SimClock, elements: int, hour: int, seed: int, chronic: int) -> dict[str, Any]:
    at = clock.now.isoformat()
    return {
        "aggregation_id": f"soak-{at}",
        "generated_at": at,
        "entries": [
            {
                "entity_id": f"SOAK-CCAP{e % 10:02d}:US-{e}",
                "market": "Monterrey",
                "hub": "SOAK01",
                "samples": [{"at": at, "value": 20.0 if sick(e, hour, seed, chronic) else 35.0}],
            }
            for e in range(elements)
        ],
    }


async def table_sizes(url: str) -> dict[str, tuple[int, int]]:
    """(rows, bytes on disk with indexes and TOAST) per table of one database."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT relname, pg_total_relation_size(relid) AS size FROM pg_stat_user_tables "
            "WHERE relname <> 'alembic_version' ORDER BY relname"
        )
        sizes = {}
        for row in rows:
            # The name comes from the catalogue, not from input.
            count = await conn.fetchval(f'SELECT count(*) FROM "{row["relname"]}"')  # noqa: S608
            sizes[row["relname"]] = (int(count), int(row["size"]))
        return sizes
    finally:
        await conn.close()


async def backlog(url: str) -> int:
    """Revisions the WM has not seen completed yet (pending, at a BE, moved back)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM ticket_delivery WHERE stage <> 'completed'")
        )
    finally:
        await conn.close()


def print_snapshot(
    day: int, wm: dict[str, tuple[int, int]], be: dict[str, tuple[int, int]]
) -> None:
    print(f"--- day {day}")
    for service, sizes in (("wm", wm), ("be", be)):
        total = sum(size for _, size in sizes.values())
        print(f"  {service} database {total / 2**20:6.1f} MiB")
        for table, (rows, size) in sizes.items():
            print(f"    {table:<26} {rows:>8} rows {size / 2**10:>9.0f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--retention-days", type=float, default=3)
    parser.add_argument("--elements", type=int, default=300)
    parser.add_argument("--chronic", type=int, default=10, help="elements sick throughout")
    parser.add_argument("--step-hours", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--report-days", default="5,10,20,35")
    args = parser.parse_args()
    report_days = {int(d) for d in args.report_days.split(",")}
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        server = embedded_pg.ensure_running(Path(tmp), durable=False)
        try:
            run(args, server, report_days)
        finally:
            embedded_pg.stop(server)


async def vacuum_at_the_pace_of_the_clock(server: embedded_pg.EmbeddedPostgres) -> None:
    """Autovacuum looks at each database every minute: a production day sees it 1 440 times,
    a simulated day here (seconds) not once. Compressing time compresses it too."""
    conn = await asyncpg.connect(asyncpg_dsn(server.url()))
    try:
        await conn.execute("ALTER SYSTEM SET autovacuum_naptime = '1s'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


def run(
    args: argparse.Namespace, server: embedded_pg.EmbeddedPostgres, report_days: set[int]
) -> None:
    wm_url, be_url = server.url("wm"), server.url("be_soak")
    for url in (wm_url, be_url):
        asyncio.run(ensure_database(url))
    asyncio.run(vacuum_at_the_pace_of_the_clock(server))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=args.days + 1)
    clock = SimClock(start)
    fast = {"retention_interval_seconds": 0.5, "retention_days": args.retention_days}
    emulators = create_emulators(EmulatorSettings(seed=args.seed))
    started = time.monotonic()
    with serve_in_thread(emulators) as platforms:
        wm_app = create_wm(
            WMSettings(
                database_url=SecretStr(wm_url),
                ingest_token=SecretStr(TOKENS["ingest"]),
                admin_token=SecretStr(TOKENS["admin"]),
                backend_token=SecretStr(TOKENS["backend"]),
                **fast,
            ),
            clock=clock,
        )
        with serve_in_thread(wm_app) as wm:
            port = embedded_pg.free_port()
            be_app = create_be(
                BESettings(
                    name="be1",
                    database_url=SecretStr(be_url),
                    public_url=f"http://127.0.0.1:{port}",
                    intake_token=SecretStr(BE_TOKENS["intake"]),
                    admin_token=SecretStr(BE_TOKENS["admin"]),
                    control_token=SecretStr(BE_TOKENS["control"]),
                    wm_url=wm.url,
                    wm_token=SecretStr(TOKENS["backend"]),
                    platform_url=platforms.url,
                    heartbeat_seconds=2,
                    poll_interval_seconds=0.05,
                    **fast,
                ),
                clock=clock,
            )
            with (
                serve_in_thread(be_app, port=port),
                httpx.Client(base_url=wm.url, timeout=60) as http,
            ):
                soak(args, clock, http, wm_url, be_url, report_days)
    print(f"soak of {args.days} simulated days took {time.monotonic() - started:.0f} s")


def soak(
    args: argparse.Namespace,
    clock: SimClock,
    http: httpx.Client,
    wm_url: str,
    be_url: str,
    report_days: set[int],
) -> None:
    headers = {"Authorization": f"Bearer {TOKENS['ingest']}"}
    pushes_per_day = 24 // args.step_hours
    for day in range(1, args.days + 1):
        for n in range(pushes_per_day):
            hour = (day - 1) * 24 + n * args.step_hours
            clock.now += timedelta(hours=args.step_hours)
            body = push_body(clock, args.elements, hour, args.seed, args.chronic)
            http.post(
                "/api/v1/aggregations/snr-upstream", json=body, headers=headers
            ).raise_for_status()
        deadline = time.monotonic() + 120
        while asyncio.run(backlog(wm_url)) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)  # at least one retention pass at this day's clock
        if day in report_days:
            print_snapshot(day, asyncio.run(table_sizes(wm_url)), asyncio.run(table_sizes(be_url)))


if __name__ == "__main__":
    main()
