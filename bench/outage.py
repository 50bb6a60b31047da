"""Outage benchmark: N tickets through one BE while SFyC answers 503 to everything for a while.

Spawns the emulators and a BE (temporary embedded Postgres), posts N tickets, fails every
SFyC work-order call with 503 for --outage seconds, then lets SFyC recover. Prints the
tickets in Error (target 0), the SFyC requests sent while the circuit was open (target: about
one per probe interval) and the time from recovery to all Completed (target: at most two
probe intervals plus the drain time of N tickets); stops everything it started.

    .venv/bin/python -m bench.outage --tickets 2000 --outage 60 --probe 15
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

import httpx

from bench.be_throughput import ADMIN_TOKEN, INTAKE_CHUNK, INTAKE_TOKEN, _service, _ticket


def _sfyc_requests(emulator: httpx.Client) -> int:
    requests = emulator.get("/_emulator/stats").json()["requests"]
    return sum(n for key, n in requests.items() if key.startswith("sfyc "))


def _counts(be: httpx.Client) -> dict[str, int]:
    response = be.get("/api/v1/tickets", params={"limit": 1})
    response.raise_for_status()
    return dict(response.json()["counts"])


def _sfyc_circuit(be: httpx.Client) -> dict[str, Any]:
    platforms = be.get("/api/v1/platforms").json()
    return next(p for p in platforms if p["platform"] == "sfyc")


def _wait(condition: Any, *, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise SystemExit(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)
    return time.monotonic() - started


def run(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="outage-bench-") as data_dir,
        _service("emulators", {"EMULATOR_SEED": "7"}) as (emulator_url, _),
    ):
        env = {
            "BE_NAME": "be-outage",
            "BE_DATA_DIR": data_dir,
            "BE_INTAKE_TOKEN": INTAKE_TOKEN,
            "BE_ADMIN_TOKEN": ADMIN_TOKEN,
            "BE_PLATFORM_URL": emulator_url,
            "BE_BYPASS_PROXY": "true",
            "BE_MAX_RETRIES": "3",
            "BE_MAX_TICKETS_PER_REQUEST": str(args.batch),
            "BE_POLL_INTERVAL_SECONDS": "0.1",
            "BE_CIRCUIT_PROBE_INTERVAL_SECONDS": str(args.probe),
            "BE_LOG_LEVEL": "WARNING",
        }
        with (
            _service("be", env) as (be_url, _),
            httpx.Client(base_url=emulator_url, timeout=30) as emulator,
            httpx.Client(
                base_url=be_url, timeout=120, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            ) as be,
        ):
            emulator.post(
                "/_emulator/faults",
                json={"platform": "sfyc", "error_rate": 1, "status": 503, "endpoint": "composite"},
            ).raise_for_status()
            tickets = [_ticket(n) for n in range(args.tickets)]
            intake = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
            for i in range(0, len(tickets), INTAKE_CHUNK):
                be.post(
                    "/api/v1/tickets",
                    json={"tickets": tickets[i : i + INTAKE_CHUNK]},
                    headers=intake,
                ).raise_for_status()
            outage_started = time.monotonic()
            _wait(lambda: _sfyc_circuit(be)["circuit"] != "closed", timeout=60, what="circuit")
            opened_after = time.monotonic() - outage_started
            before = _sfyc_requests(emulator)
            open_started = time.monotonic()
            time.sleep(max(args.outage - opened_after, 0))
            while_open = _sfyc_requests(emulator) - before
            open_seconds = time.monotonic() - open_started
            errors_during = _counts(be).get("Error", 0)
            emulator.delete("/_emulator/faults").raise_for_status()
            drained = _wait(
                lambda: (
                    _counts(be).get("Completed", 0) + _counts(be).get("Error", 0) >= args.tickets
                ),
                timeout=args.timeout,
                what="every ticket Completed",
            )
            counts = _counts(be)
            orders = len(emulator.get("/_emulator/records/workorder").json())
    print(f"tickets: {args.tickets}, batch {args.batch}, outage {args.outage:.0f} s of SFyC 503s")
    print(f"circuit opened after: {opened_after:.1f} s")
    print(
        f"SFyC requests while open: {while_open} in {open_seconds:.1f} s "
        f"(probe interval {args.probe:g} s: at most {int(open_seconds // args.probe) + 1})"
    )
    print(
        f"tickets in Error: during the outage {errors_during}, at the end {counts.get('Error', 0)}"
    )
    print(
        f"recovery → all Completed: {drained:.1f} s "
        f"(target ≤ 2 probe intervals + drain = {2 * args.probe:g} s + drain)"
    )
    print(f"work orders on SFyC: {orders} (expected {args.tickets})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--outage", type=float, default=60.0, help="seconds of SFyC 503s")
    parser.add_argument("--probe", type=float, default=15.0, help="circuit probe interval")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=300.0)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
