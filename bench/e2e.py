"""End-to-end benchmark: aggregation push → tickets Completed on both platforms.

Starts the whole system (embedded Postgres, emulators with 20 ms latency per request, the WM
and two BEs with batch size 100) in a temporary folder on free ports, pushes N critical
entries (default 20 000), and measures the time until every ticket is Completed on the BEs.
Prints tickets/s end to end, the ingest time and the peak RSS of every process; stops
everything it started.

    .venv/bin/python -m bench.e2e [--tickets 20000] [--latency-ms 20] [--batch-size 100]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.support import PeakMemory
from ticketing_cli.client import EmulatorClient
from ticketing_cli.stack import StackLayout, start_stack
from ticketing_cli.tour import be_status_counts, clients, wait_for_backends


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        layout = StackLayout.on_free_ports(be_count=2)
        stack = start_stack(Path(tmp), layout)
        try:
            wm, bes, emulator = clients(stack)
            wait_for_backends(wm, len(bes))
            EmulatorClient(layout.emulator_url).set_faults(
                platform="all", latency_ms=args.latency_ms
            )
            for _, be in bes:
                with httpx.Client(base_url=be.url, timeout=10) as http:
                    http.patch(
                        "/api/v1/settings",
                        json={"max_tickets_per_request": args.batch_size},
                        headers={"Authorization": f"Bearer {be.admin_token}"},
                    ).raise_for_status()
            body = json.dumps(critical_aggregation(args.tickets)).encode()
            pids = {child.name: child.process.pid for child in stack.children}
            pids["postgres"] = stack.database.pid
            with PeakMemory(pids) as rss:
                started = time.perf_counter()
                result = wm.push("snr-upstream", body)
                ingest_seconds = time.perf_counter() - started
                expected = result["tickets"]["opened"]
                done = 0
                deadline = time.monotonic() + args.timeout
                while time.monotonic() < deadline:
                    counts = [be_status_counts(be) for _, be in bes]
                    done = sum(c["Completed"] + c["Error"] for c in counts)
                    if done >= expected:
                        break
                    time.sleep(0.2)
                elapsed = time.perf_counter() - started
            stats = emulator.stats()
        finally:
            stack.stop()

    errors = sum(c["Error"] for c in counts)
    print(f"tickets pushed (critical entries): {expected}")
    print(f"tickets finished on the BEs:        {done} ({errors} Error)")
    print(f"ingest (push request):              {ingest_seconds:.2f} s")
    print(f"end to end:                         {elapsed:.2f} s")
    print(f"throughput end to end:              {done / elapsed:.0f} tickets/s")
    print(
        f"platform requests per ticket:       {sum(stats['requests'].values()) / max(done, 1):.2f}"
    )
    print("peak memory (PSS) per process:")
    for name, peak in rss.peaks.items():
        print(f"  {name:<10} {peak / 2**20:7.0f} MB")


if __name__ == "__main__":
    main()
