"""BE throughput benchmark: N tickets through one BE against the emulators (20 ms latency).

Spawns the emulators and a BE as `ticketing` subprocesses (the BE on a temporary embedded
Postgres unless --database-url is given), posts N tickets with processing off, switches it
on and waits until all are Completed. Prints tickets/s, requests per ticket and the BE's
peak RSS; stops everything it started.

    .venv/bin/python bench/be_throughput.py --tickets 5000 --batch 100 --latency-ms 20
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psutil

INTAKE_TOKEN = "bench-intake"  # noqa: S105 (a throwaway token for a local benchmark)
ADMIN_TOKEN = "bench-admin"  # noqa: S105
INTAKE_CHUNK = 1000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _service(command: str, env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ticketing_cli.main",
            command,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={**os.environ, **env},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(f"ticketing {command} exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"ticketing {command} did not become ready")
            time.sleep(0.2)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class PeakRss:
    """Samples a process's resident set size every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


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
            "BE_PROCESSING_ENABLED": "false",
            "BE_MAX_TICKETS_PER_REQUEST": str(args.batch),
            "BE_POLL_INTERVAL_SECONDS": "0.05",
            "BE_LOG_LEVEL": "WARNING",
        }
        if args.database_url:
            env["BE_DATABASE_URL"] = args.database_url
        with _service("be", env) as (be_url, be_process), PeakRss(be_process.pid) as rss:
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
                while True:
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
        stats = httpx.get(f"{emulator_url}/_emulator/stats").json()
    requests = sum(stats["requests"].values())
    print(
        f"tickets            {args.tickets} (batch {args.batch}, latency {args.latency_ms} ms,"
        f" {args.workers} workers)"
    )
    print(f"completed / error  {counts['Completed']} / {counts['Error']}")
    print(f"intake             {args.tickets / intake_seconds:,.0f} tickets/s")
    print(
        f"delivery           {args.tickets / delivery_seconds:,.0f} tickets/s completed"
        f" ({delivery_seconds:.2f} s)"
    )
    print(f"end to end         {args.tickets / (intake_seconds + delivery_seconds):,.0f} tickets/s")
    print(f"requests/ticket    {requests / args.tickets:.3f} ({requests} platform requests)")
    print(f"BE peak RSS        {rss.peak / 2**20:.0f} MB")
    print(f"CPU seconds        BE {be_cpu:.1f}, emulators {emulator_cpu:.1f} (whole run)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--database-url", default=None, help="default: temporary embedded PG")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
