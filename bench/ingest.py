"""Benchmark of one large push: latency, entries/s and the WM's peak RSS.

By default it starts a WM (as `ticketing wm` runs it) on a free 127.0.0.1 port with a
throw-away embedded Postgres, pushes a generated snr-upstream aggregation (100 000 entries x 4
samples, about 5 % critical) and then the same samples again under a new aggregation_id (a
"full" push: nothing new, every ticket unchanged), prints the figures and stops the WM.
`--repeats N` sends N such full pushes (the WM's peak after many pushes: the allocator keeps
some of what earlier ones freed). `--url` and `--token` target a WM that is already running
instead (its RSS is then not measured).

`--planned-work` compares runs on fresh WMs without and with 200 maintenance windows (100
covering a service group at push time, 100 daily ones that do not) and service-group
correlation on (group_min_channels 3): `--pairs` pairs in ABBA order (the machine's speed
drifts by more than the 10 % being judged within minutes), then the median change.

    .venv/bin/python bench/ingest.py [--entries 100000] [--samples 4] [--critical 0.05]
                                     [--repeats 1] [--planned-work [--pairs 3]]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

import httpx
import msgspec
import psutil

from ticketing_cli import serve


def generate(
    entries: int, samples: int, critical_ratio: float, aggregation_id: str, generated_at: datetime
) -> bytes:
    """A push body like the aggregator's: location and a severity on every sample, SNR in dB."""
    rng = random.Random(42)
    stamps = [
        (generated_at - timedelta(minutes=15 * k)).isoformat().replace("+00:00", "Z")
        for k in range(samples)
    ]
    rows: list[dict[str, Any]] = []
    for i in range(entries):
        critical = rng.random() < critical_ratio
        ccap, sg = i // 5000, i // 25
        rows.append(
            {
                "entity_id": f"MKT{i % 40:02d}-CCAP{ccap:03d}:US-{sg}/0/{i % 4}",
                "market": f"Mercado {ccap % 40}",  # a service group lies in one market
                "hub": f"HUB{i // 2500:03d}",
                "ccap": f"CCAP{ccap:03d}",
                "service_group": f"N{sg:05d}",
                "channel": f"US-{sg}/0/{i % 4}",
                "subscribers": rng.randint(5, 400),
                "samples": [
                    {
                        "at": stamp,
                        "value": round(rng.uniform(18, 24.9) if bad else rng.uniform(30, 40), 1),
                        "severity": "critical" if bad else "normal",
                    }
                    for k, stamp in enumerate(stamps)
                    for bad in [critical and k == 0]
                ],
            }
        )
    body = {
        "aggregation_id": aggregation_id,
        "generated_at": generated_at.isoformat().replace("+00:00", "Z"),
        "entries": rows,
    }
    return msgspec.json.encode(body)


class PeakRss:
    """A process's peak resident memory over a block: the kernel's own high-water mark
    (`VmHWM` in /proc/PID/status), reset as the block starts by writing 5 to
    /proc/PID/clear_refs. Exact, where sampling RSS now and then could miss a short peak;
    reset, so the second push is measured on its own, not as the larger of both."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak = 0
        self.since_start = False  # True when the reset was refused: the peak since start

    def _status(self, field: str) -> int:
        with open(f"/proc/{self._pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {field} in /proc/{self._pid}/status")

    def __enter__(self) -> PeakRss:
        try:
            with open(f"/proc/{self._pid}/clear_refs", "w") as clear:
                clear.write("5")
        except OSError:
            self.since_start = True
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self.peak = self._status("VmHWM")
        except OSError:  # the WM is gone: the push itself failed and says why
            self.peak = 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_wm(data_dir: str, token: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "WM_DATA_DIR": data_dir,
        "WM_INGEST_TOKEN": token,
        "WM_ADMIN_TOKEN": token,
        "WM_LOG_LEVEL": "WARNING",
    }
    env.pop("WM_DATABASE_URL", None)
    command = serve.argv("wm", "127.0.0.1", port)  # as `ticketing wm` runs it
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"ticketing wm exited with {process.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("ticketing wm did not become ready")


def push(url: str, token: str, body: bytes) -> tuple[float, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    started = time.perf_counter()
    response = httpx.post(
        f"{url}/api/v1/aggregations/snr-upstream", content=body, headers=headers, timeout=300
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"push failed: {response.status_code} {response.text[:500]}")
    result: dict[str, Any] = response.json()
    return elapsed, result


def wait_until_written(url: str, token: str, result: dict[str, Any]) -> float | None:
    """Seconds until a big push's revisions are all written (it answers before: see
    WM_PUSH_CHUNK_REVISIONS); None when it wrote them before answering."""
    if not result["revisions_to_write"]:
        return None
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}"}
    params = {"kind": result["kind"], "limit": 1}
    while True:
        page = httpx.get(f"{url}/api/v1/aggregations", params=params, headers=headers, timeout=60)
        page.raise_for_status()
        if page.json()["items"][0]["revisions_to_write"] == 0:
            return time.perf_counter() - started
        if time.perf_counter() - started > 300:
            raise SystemExit("the push's revisions were not written within 300 s")
        time.sleep(0.02)


def planned_work(url: str, token: str, generated_at: datetime, windows: int = 200) -> None:
    """`windows` maintenance windows (half covering a service group now) and correlation on."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for k in range(windows):
            active = k % 2 == 0
            start = (
                generated_at - timedelta(hours=2) if active else generated_at + timedelta(hours=3)
            )
            body = {
                "service_group": f"N{k * 20:05d}",
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=4)).isoformat(),
                "recurrence": None if active else "FREQ=DAILY",
                "reason": "bench",
                "created_by": "bench",
            }
            client.post("/api/v1/maintenance-windows", json=body).raise_for_status()
        client.patch("/api/v1/settings", json={"group_min_channels": 3}).raise_for_status()


def run(
    args: argparse.Namespace, bodies: list[bytes], generated_at: datetime, planned: bool
) -> list[float]:
    """The pushes against one WM (started here unless --url); their durations."""
    elapsed_all = []
    with tempfile.TemporaryDirectory(prefix="wm-bench-") as data_dir:
        process = None
        if args.url:
            url, token = args.url.rstrip("/"), args.token or ""
        else:
            token = secrets.token_urlsafe(16)
            process, url = start_wm(data_dir, token)
        try:
            if planned:
                planned_work(url, token, generated_at)
            for label, body in zip(_labels(len(bodies)), bodies, strict=True):
                before = psutil.Process(process.pid).memory_info().rss if process else None
                monitor = PeakRss(process.pid) if process else None
                with monitor or contextlib.nullcontext():
                    elapsed, result = push(url, token, body)
                    # The peak covers the writing of a big push's revisions after it answers.
                    written_after = wait_until_written(url, token, result)
                elapsed_all.append(elapsed)
                print(
                    f"{label}: {elapsed:.2f} s, {args.entries / elapsed:,.0f} entries/s, "
                    f"critical entries {result['critical_entries']}, tickets {result['tickets']}"
                    + (f", suppressed {result['suppressed']}" if planned else "")
                )
                if written_after is not None:
                    print(
                        f"  its {result['revisions_to_write']} revisions written "
                        f"{written_after:.2f} s after the answer"
                    )
                if monitor and monitor.peak and before:
                    print(
                        f"  WM peak RSS (VmHWM{', since start' if monitor.since_start else ''})"
                        f" {monitor.peak / 2**20:.0f} MiB = {monitor.peak / 1e6:.0f} MB, "
                        f"target <= 180 MB (RSS before this push {before / 2**20:.0f} MiB)"
                    )
        finally:
            if process is not None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
    return elapsed_all


# What a --planned-work run pushes against, by whether its windows are on.
_SETUPS = {
    False: "without windows, correlation off",
    True: "200 maintenance windows, correlation on (group_min_channels 3)",
}


def _labels(pushes: int) -> list[str]:
    if pushes == 2:
        return ["first push (opens tickets)", "repeated full push (unchanged)"]
    repeated = (f"repeated full push {n} (unchanged)" for n in range(1, pushes))
    return ["first push (opens tickets)", *repeated]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--critical", type=float, default=0.05, help="share of critical entries")
    parser.add_argument("--url", help="a running WM (default: start one)")
    parser.add_argument("--token", help="its ingest token (with --url)")
    parser.add_argument(
        "--planned-work",
        action="store_true",
        help="compare with 200 maintenance windows and correlation on (starts its own WMs)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="full pushes after the first (each measured alone: the peak after many pushes)",
    )
    parser.add_argument(
        "--pairs", type=int, default=3, help="with --planned-work: runs without and with"
    )
    args = parser.parse_args()
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.planned_work and args.url:
        parser.error("--planned-work starts its own WMs: drop --url")

    run_id = secrets.token_hex(4)
    # Every push carries the same samples, so the ones after the first find nothing new.
    generated_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    first_id = f"bench-{run_id}-0"
    first = generate(args.entries, args.samples, args.critical, first_id, generated_at)
    bodies = [first] + [
        first.replace(first_id.encode(), f"bench-{run_id}-{n}".encode(), 1)
        for n in range(1, args.repeats + 1)
    ]
    print(
        f"push body: {args.entries} entries x {args.samples} samples, "
        f"{len(bodies[0]) / 1e6:.1f} MB JSON"
    )
    if not args.planned_work:
        run(args, bodies, generated_at, planned=False)
        return
    pairs: list[tuple[list[float], list[float]]] = []
    for n in range(args.pairs):
        times: dict[bool, list[float]] = {}
        # ABBA: without first in even pairs, with first in odd ones, so a drift cancels out.
        for planned in (False, True) if n % 2 == 0 else (True, False):
            print(f"-- pair {n + 1}: {_SETUPS[planned]}")
            times[planned] = run(args, bodies, generated_at, planned=planned)
        pairs.append((times[False], times[True]))
    for i, label in enumerate(_labels(len(bodies))):
        changes = [after[i] / before[i] - 1 for before, after in pairs]
        each = ", ".join(
            f"{before[i]:.2f} → {after[i]:.2f} s ({change * 100:+.0f} %)"
            for (before, after), change in zip(pairs, changes, strict=True)
        )
        print(f"{label}: median {median(changes) * 100:+.1f} % over {len(pairs)} pair(s): {each}")


if __name__ == "__main__":
    main()
