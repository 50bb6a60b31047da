"""End-to-end benchmark: aggregation push → tickets Completed on both platforms.

Starts the whole system (embedded Postgres, emulators with 20 ms latency per request, the WM
and two BEs with batch size 100) in a temporary folder on free ports, pushes N critical
entries (default 20 000), and measures the time until every ticket is Completed on the BEs.
Interleaved with each of our runs, Prometheus Alertmanager delivers the same N problems
(bench/alertmanager.py; `--am-receiver asgi` for a receiver built like our emulators): the
machine is noisy, so it runs 3 + 3 and compares medians. Prints tickets/s, the push time,
CPU seconds per process (Postgres with its finished backends, and split by database) and per
ticket, and the peak PSS of every process; stops everything it started.

    .venv/bin/python -m bench.e2e [--tickets 20000] [--runs 3] [--no-alertmanager]
                                  [--am-receiver bare|asgi]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import httpx

from bench import alertmanager
from bench.support import CpuMeter, DatabaseCpu, PeakMemory
from ticketing_cli.client import BEClient, EmulatorClient, WMClient
from ticketing_cli.stack import Stack, StackLayout, start_stack
from ticketing_cli.tour import be_status_counts, clients, wait_for_backends

# How often the BEs' status counts are read while the work orders are not all there yet.
COUNT_EVERY = 3.0


def critical_aggregation(count: int) -> dict[str, Any]:
    """`count` SNR channels, each with two critical samples in the last half hour."""
    now = datetime.now(UTC).replace(microsecond=0)
    samples = [{"at": (now - timedelta(minutes=m)).isoformat(), "value": 21.5} for m in (15, 0)]
    entries = [
        {
            "entity_id": f"BENCH{i // 4000:02d}-CCAP{(i // 400) % 10:02d}:US-{i % 8}/0/{i % 4}:{i}",
            "market": "Monterrey",
            "hub": f"BENCH{i // 4000:02d}",
            "ccap": f"CCAP{(i // 400) % 10:02d}",
            "service_group": f"N{i // 4:05d}",
            "channel": f"US-{i % 8}/0/{i % 4}",
            "subscribers": 20 + i % 300,
            "samples": samples,
        }
        for i in range(count)
    ]
    return {
        "aggregation_id": f"bench-{now.isoformat()}",
        "generated_at": now.isoformat(),
        "entries": entries,
    }


@dataclass(frozen=True)
class OurRun:
    tickets: int
    errors: int
    push_seconds: float
    seconds: float
    requests_per_ticket: float
    cpu: dict[str, float]
    postgres_by_database: dict[str, float]  # bench.support.DatabaseCpu.split
    peak_pss: dict[str, int]
    machine: str  # the cores' busy and stolen shares over the run (bench.support.CpuMeter)


@contextlib.contextmanager
def running_system(
    prefix: str, *, latency_ms: int, batch_size: int
) -> Iterator[tuple[Stack, WMClient, list[tuple[str, BEClient]], EmulatorClient]]:
    """The whole system on free ports in a temporary folder (two BEs, the platforms'
    latency and the BEs' batch size set), stopped at the end."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        layout = StackLayout.on_free_ports(be_count=2)
        stack = start_stack(Path(tmp), layout)
        try:
            wm, bes, emulator = clients(stack)
            wait_for_backends(wm, len(bes))
            emulator.set_faults(platform="all", latency_ms=latency_ms)
            for _, be in bes:
                httpx.patch(
                    be.url + "/api/v1/settings",
                    json={"max_tickets_per_request": batch_size},
                    headers={"Authorization": f"Bearer {be.admin_token}"},
                    timeout=10,
                ).raise_for_status()
            yield stack, wm, bes, emulator
        finally:
            stack.stop()


def our_run(args: argparse.Namespace) -> OurRun:
    with running_system("bench-e2e-", latency_ms=args.latency_ms, batch_size=args.batch_size) as (
        stack,
        wm,
        bes,
        emulator,
    ):
        body = json.dumps(critical_aggregation(args.tickets)).encode()
        pids = {child.name: child.process.pid for child in stack.children}
        pids["postgres"] = stack.database.pid
        with PeakMemory(pids) as rss, CpuMeter(pids) as cpu, DatabaseCpu(pids["postgres"]) as db:
            started = time.perf_counter()
            result = wm.push("snr-upstream", body)
            push_seconds = time.perf_counter() - started
            expected = result["tickets"]["opened"]
            done, counts = 0, []
            deadline = time.monotonic() + args.timeout
            next_count = time.monotonic() + COUNT_EVERY
            while time.monotonic() < deadline:
                # The BEs' counts scan their revisions: asked every 0.5 s they cost the
                # system under test ~1 CPU-s per run. The emulators count work orders in
                # memory, so the BEs are asked only once the last ones exist (or now and
                # then, in case some tickets end in Error and never get one).
                near_end = emulator.stats()["records"]["workorder"] >= expected
                if near_end or time.monotonic() >= next_count:
                    next_count = time.monotonic() + COUNT_EVERY
                    counts = [be_status_counts(be) for _, be in bes]
                    done = sum(c["Completed"] + c["Error"] for c in counts)
                    if done >= expected:
                        break
                time.sleep(0.1)
            elapsed = time.perf_counter() - started
        stats = emulator.stats()
    return OurRun(
        tickets=done,
        errors=sum(c["Error"] for c in counts),
        push_seconds=push_seconds,
        seconds=elapsed,
        requests_per_ticket=sum(stats["requests"].values()) / max(done, 1),
        cpu=cpu.seconds,
        postgres_by_database=db.split(cpu.seconds["postgres"]),
        peak_pss=rss.peaks,
        machine=cpu.machine(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--runs", type=int, default=3, help="of each, interleaved")
    parser.add_argument("--no-alertmanager", action="store_true", help="our runs only")
    parser.add_argument(
        "--am-receiver",
        choices=list(alertmanager.RECEIVERS),
        default="bare",
        help="Alertmanager's webhook receiver: bare (strict), or asgi (built like our emulators)",
    )
    args = parser.parse_args()
    binary = None if args.no_alertmanager else alertmanager.ensure_installed()
    if binary is None and not args.no_alertmanager:
        print("prometheus-alertmanager is missing and cannot be installed (not root): ours only")
    ours: list[OurRun] = []
    theirs: list[alertmanager.AlertmanagerRun] = []
    for n in range(args.runs):
        ours.append(our_run(args))
        report_ours(n + 1, ours[-1])
        if binary is not None:
            theirs.append(
                alertmanager.run(
                    binary, args.tickets, timeout=args.timeout, receiver_kind=args.am_receiver
                )
            )
            am = theirs[-1]
            receiver = (
                ""
                if am.receiver_cpu_seconds is None
                else f" (+ receiver {am.receiver_cpu_seconds:.1f})"
            )
            print(
                f"alertmanager run {n + 1} ({args.am_receiver} receiver): {am.delivered} groups "
                f"in {am.seconds:.2f} s = {am.delivered / am.seconds:.0f}/s, "
                f"{am.cpu_seconds:.1f} CPU-s{receiver}; {am.machine}"
            )
    ours_rate = median(r.tickets / r.seconds for r in ours)
    print(f"median ours:          {ours_rate:.0f} tickets/s end to end")
    if theirs:
        theirs_rate = median(r.delivered / r.seconds for r in theirs)
        print(f"median alertmanager:  {theirs_rate:.0f} groups/s")
        print(f"ratio (ours / alertmanager): {ours_rate / theirs_rate:.2f}x")


def report_ours(n: int, run: OurRun) -> None:
    services = sum(s for name, s in run.cpu.items() if name == "wm" or name.startswith("be"))
    print(
        f"our run {n}: {run.tickets} tickets ({run.errors} Error) in {run.seconds:.2f} s = "
        f"{run.tickets / run.seconds:.0f}/s; push {run.push_seconds:.2f} s; "
        f"{run.requests_per_ticket:.2f} platform requests/ticket"
    )
    print(
        "  CPU s: "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in run.cpu.items())
        + f"; per ticket: WM+BEs {1000 * services / run.tickets:.2f} ms, Postgres "
        f"{1000 * run.cpu['postgres'] / run.tickets:.2f} ms, emulators "
        f"{1000 * run.cpu['emulators'] / run.tickets:.2f} ms"
    )
    print(
        "  Postgres CPU s by database: "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in run.postgres_by_database.items())
        + " (rest: the server's own processes, autovacuum, backends that ended)"
    )
    print(f"  machine: {run.machine}")
    print(
        "  peak PSS MB: "
        + ", ".join(f"{name} {peak / 2**20:.0f}" for name, peak in run.peak_pss.items())
    )


if __name__ == "__main__":
    main()
