"""Idle benchmark: what the running system costs when there is nothing to do.

Starts the whole system as bench/e2e.py does (embedded Postgres, emulators, the WM and two
BEs), pushes a few hundred critical entries and waits until they are Completed, so every
loop has worked once, then lets it settle and measures each process's CPU over a quiet
window. Prints the share of one core each process used; stops everything it started.

    .venv/bin/python -m bench.idle [--seconds 60] [--settle 10]
"""

from __future__ import annotations

import argparse
import json
import time

from bench.e2e import critical_aggregation, running_system
from bench.support import CpuMeter
from ticketing_cli.tour import be_status_counts

# Enough for every loop to have worked (WM → both BEs → both platforms, reports back).
WARM_UP_TICKETS = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="the measured quiet window")
    # The WM keeps its fast pace for 5 s after its last work (IDLE_AFTER_SECONDS in
    # wm_service/distribution/worker.py); the default settle covers it with a margin.
    parser.add_argument("--settle", type=float, default=10, help="wait after the last ticket")
    args = parser.parse_args()
    with running_system("bench-idle-", latency_ms=20, batch_size=100) as (stack, wm, bes, _):
        expected = wm.push(
            "snr-upstream", json.dumps(critical_aggregation(WARM_UP_TICKETS)).encode()
        )["tickets"]["opened"]
        deadline = time.monotonic() + 120
        while sum(be_status_counts(be)["Completed"] for _, be in bes) < expected:
            if time.monotonic() > deadline:
                raise SystemExit(f"the {expected} warm-up tickets were not Completed in 120 s")
            time.sleep(0.5)
        time.sleep(args.settle)
        pids = {child.name: child.process.pid for child in stack.children}
        pids["postgres"] = stack.database.pid
        with CpuMeter(pids) as cpu:
            time.sleep(args.seconds)
    print(f"idle for {args.seconds:.0f} s after {expected} tickets ({cpu.machine()}):")
    for name, seconds in cpu.seconds.items():
        print(f"  {name:10} {100 * seconds / args.seconds:5.2f} % of a core")


if __name__ == "__main__":
    main()
