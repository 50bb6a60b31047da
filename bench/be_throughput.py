"""BE throughput benchmark: N tickets through one BE against the emulators (20 ms latency).

Spawns the emulators and a BE as `ticketing` subprocesses (the BE on a temporary embedded
Postgres unless --database-url is given), posts N tickets with processing off, switches it
on and waits until all are Completed. Prints tickets/s, requests per ticket and the BE's
peak memory; stops everything it started.

    .venv/bin/python -m bench.be_throughput --tickets 5000 --batch 100 --latency-ms 20
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from be_service.config import BESettings
from bench.support import CpuMeter, PeakMemory
from ticketing_cli.stack import launch
from ticketing_common import embedded_pg
from ticketing_common.embedded_pg import free_port

INTAKE_TOKEN = "bench-intake"  # noqa: S105 (a throwaway token for a local benchmark)
ADMIN_TOKEN = "bench-admin"  # noqa: S105
METRICS_TOKEN = "bench-metrics"  # noqa: S105
INTAKE_CHUNK = 1000


@contextlib.contextmanager
def _service(command: str, env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A `ticketing <command>` subprocess on a free port, ready; stopped on exit."""
    child = launch(command, command, port=free_port(), env=env)
    try:
        child.wait_ready()
        yield child.url, child.process
    finally:
        child.stop()


def _ticket(n: int) -> dict[str, Any]:
    key = f"snr-upstream:BENCH-CCAP{n // 1000:02d}:US-{n}"
    return {
        "ticket_id": str(uuid.uuid4()),
        "dedup_key": key,
        "revision": 1,
        "action": "open",
        "kind": "snr-upstream",
        "category": "SNR",
        "priority": "P3",
        "title": f"SNR bajo en {key}",
        "description": "SNR crítico (< 25 dB) en las últimas 24 horas",
        "location": {
            "market": "MTY",
            "hub": "MTY01",
            "ccap": "CCAP02",
            "service_group": None,
            "channel": f"US-{n}",
            "missing_location": False,
        },
        "subscribers": 80,
        "work_order": {"subject": f"Revisar {key}", "description": "Revisar el canal"},
        "generated_at": datetime.now(UTC).isoformat(),
    }


def run(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="be-bench-") as data_dir,
        _service("emulators", {}) as (emulator_url, emulator_process),
    ):
        httpx.post(
            f"{emulator_url}/_emulator/faults",
            json={"platform": "all", "latency_ms": args.latency_ms},
        ).raise_for_status()
        env = {
            "BE_NAME": "be-bench",
            "BE_DATA_DIR": data_dir,
            "BE_INTAKE_TOKEN": INTAKE_TOKEN,
            "BE_ADMIN_TOKEN": ADMIN_TOKEN,
            "BE_CHERWELL_URL": f"{emulator_url}/CherwellAPI",
            "BE_SFYC_URL": f"{emulator_url}/services",
            "BE_BYPASS_PROXY": "true",
            "BE_WORKERS": str(args.workers),
            "BE_WORKERS_MAX": str(max(args.workers, args.workers_max)),
            "BE_METRICS_TOKEN": METRICS_TOKEN,
            "BE_PROCESSING_ENABLED": "false",
            "BE_MAX_TICKETS_PER_REQUEST": str(args.batch),
            "BE_POLL_INTERVAL_SECONDS": "0.05",
            "BE_LOG_LEVEL": "WARNING",
        }
        if args.database_url:
            env["BE_DATABASE_URL"] = args.database_url
        with (
            _service("be", env) as (be_url, be_process),
            PeakMemory({"be": be_process.pid}) as memory,
            CpuMeter(_postgres_of(Path(data_dir), args.database_url)) as database_cpu,
        ):
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            tickets = [_ticket(n) for n in range(args.tickets)]
            with httpx.Client(base_url=be_url, timeout=120) as client:
                started = time.perf_counter()
                for i in range(0, len(tickets), INTAKE_CHUNK):
                    client.post(
                        "/api/v1/tickets",
                        json={"tickets": tickets[i : i + INTAKE_CHUNK]},
                        headers={"Authorization": f"Bearer {INTAKE_TOKEN}"},
                    ).raise_for_status()
                intake_seconds = time.perf_counter() - started
                started = time.perf_counter()
                client.patch(
                    "/api/v1/settings", json={"processing_enabled": True}, headers=admin
                ).raise_for_status()
                deadline = time.monotonic() + args.timeout
                # The BE's counts and its /metrics read its revisions from Postgres (10-15
                # ms at 20 000): asked every 50 ms they were most of the Postgres time of a
                # long run. The emulator counts work orders in memory, so the BE is asked
                # once those are all there, and once a second otherwise (the batches in
                # flight, and tickets that end in Error and never get a work order).
                in_flight, next_look = [], 0.0
                while True:
                    near_end = _work_orders(emulator_url) >= args.tickets
                    if near_end or time.monotonic() >= next_look:
                        next_look = time.monotonic() + 1.0
                        in_flight.append(_batches_in_flight_limit(client))
                        counts = client.get(
                            "/api/v1/tickets", params={"limit": 1}, headers=admin
                        ).json()["counts"]
                        if counts["Completed"] + counts["Error"] >= args.tickets:
                            break
                    if time.monotonic() > deadline:
                        raise SystemExit(f"not done after {args.timeout} s: {counts}")
                    time.sleep(0.05)
                delivery_seconds = time.perf_counter() - started
            be_cpu = sum(psutil.Process(be_process.pid).cpu_times()[:2])
        emulator_cpu = sum(psutil.Process(emulator_process.pid).cpu_times()[:2])
        stats = _emulator_stats(emulator_url)
    requests = sum(stats["requests"].values())
    print(
        f"tickets            {args.tickets} (batch {args.batch}, latency {args.latency_ms} ms,"
        f" {args.workers} to {max(args.workers, args.workers_max)} workers)"
    )
    print(
        f"batches in flight  {in_flight[0]} at the start, at most {max(in_flight)},"
        f" {in_flight[-1]} at the end"
    )
    print(f"completed / error  {counts['Completed']} / {counts['Error']}")
    print(f"intake             {args.tickets / intake_seconds:,.0f} tickets/s")
    print(
        f"delivery           {args.tickets / delivery_seconds:,.0f} tickets/s completed"
        f" ({delivery_seconds:.2f} s)"
    )
    print(f"end to end         {args.tickets / (intake_seconds + delivery_seconds):,.0f} tickets/s")
    print(f"requests/ticket    {requests / args.tickets:.3f} ({requests} platform requests)")
    print(f"BE peak memory     {memory.peaks['be'] / 2**20:.0f} MB (PSS)")
    print(f"CPU seconds        BE {be_cpu:.1f}, emulators {emulator_cpu:.1f} (whole run)")
    if "postgres" in database_cpu.seconds:
        postgres = database_cpu.seconds["postgres"]
        print(
            f"Postgres CPU       {postgres:.1f} s, {1000 * postgres / args.tickets:.2f} ms/ticket"
            " (intake and delivery)"
        )


def _emulator_stats(emulator_url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{emulator_url}/_emulator/stats").json())


def _work_orders(emulator_url: str) -> int:
    return int(_emulator_stats(emulator_url)["records"]["workorder"])


def _batches_in_flight_limit(client: httpx.Client) -> int:
    text = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    for line in text.splitlines():
        if line.startswith("be_batches_in_flight_limit "):
            return int(float(line.split()[1]))
    raise SystemExit("the BE's /metrics has no be_batches_in_flight_limit")


def _postgres_of(data_dir: Path, database_url: str | None) -> dict[str, int]:
    """The embedded server's postmaster, to count its CPU (none for an external database)."""
    running = None if database_url else embedded_pg.read_postmaster(data_dir / "pg")
    return {} if running is None else {"postgres": running[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument(
        "--workers",
        type=int,
        default=BESettings.model_fields["workers"].default,
        help="BE_WORKERS (default: the BE's)",
    )
    parser.add_argument(
        "--workers-max",
        type=int,
        default=BESettings.model_fields["workers_max"].default,
        help="BE_WORKERS_MAX (default: the BE's; = --workers fixes the number)",
    )
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--database-url", default=None, help="default: temporary embedded PG")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
