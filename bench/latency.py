"""Latency as the NOC feels it: from the push to each ticket Completed on both platforms.

Starts the whole system (as bench/e2e.py: embedded Postgres, emulators with 20 ms latency,
the WM and two BEs, batch 100) on free ports, pushes N critical entries (default 1 000), and
reads, for every ticket, when its BE reported it completed (the WM's `outcome_at`, written by
the BE when the work order was linked to the incident). Prints p50 / p90 / p99 / max of
(completed - push sent); stops everything it started.

    .venv/bin/python -m bench.latency [--tickets 1000] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from statistics import quantiles
from typing import Any

from bench.e2e import critical_aggregation, running_system
from ticketing_cli.client import WMClient


def completed_times(wm: WMClient, expected: int, timeout: float) -> list[datetime]:
    """Every ticket's completion time on the WM, once all `expected` are completed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tickets: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 500, "stage": "completed"}
            if cursor:
                params["cursor"] = cursor
            page = wm.get("/api/v1/tickets", **params)
            tickets += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        if len(tickets) >= expected:
            return [datetime.fromisoformat(t["outcome_at"]) for t in tickets]
        time.sleep(0.5)
    raise SystemExit(f"not all {expected} tickets completed within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    with running_system(
        "bench-latency-", latency_ms=args.latency_ms, batch_size=args.batch_size
    ) as (_, wm, _, _):
        body = json.dumps(critical_aggregation(args.tickets)).encode()
        sent = datetime.now(UTC)
        result = wm.push("snr-upstream", body)
        done = completed_times(wm, result["tickets"]["opened"], args.timeout)
    seconds = sorted((at - sent).total_seconds() for at in done)
    cuts = quantiles(seconds, n=100, method="inclusive")
    print(f"tickets: {len(seconds)} (push of {args.tickets} critical entries)")
    print(
        f"push → Completed on both platforms: p50 {cuts[49]:.2f} s, p90 {cuts[89]:.2f} s, "
        f"p99 {cuts[98]:.2f} s, max {seconds[-1]:.2f} s"
    )


if __name__ == "__main__":
    main()
