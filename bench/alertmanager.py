"""The yardstick of bench/e2e.py: Prometheus Alertmanager delivering the same N problems.

What an operator would reach for first: one alert per element, grouped by element
(`group_wait` 1 s), each group delivered to a minimal webhook receiver on loopback. The run
posts N alerts to Alertmanager's API and times until the receiver has seen all N groups.
Debian's `prometheus-alertmanager` is installed when it is missing (root only).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from bench.support import CpuMeter
from ticketing_common.embedded_pg import free_port

BINARY = "prometheus-alertmanager"
POST_CHUNK = 1000


@dataclass(frozen=True)
class AlertmanagerRun:
    delivered: int
    seconds: float
    cpu_seconds: float


def ensure_installed() -> str | None:
    """The binary's path, installing the Debian package if needed; None if impossible."""
    found = shutil.which(BINARY)
    if found or os.geteuid() != 0:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", BINARY],
        check=False,
        env=env,
    )
    return shutil.which(BINARY)


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) drops the SYNs of Alertmanager's burst of connections,
    # and TCP retries them 1, 3, 7 … s later: the yardstick would be slow for a reason of ours.
    request_queue_size = 1024
    daemon_threads = True


class _Receiver:
    """Counts the distinct groups the webhooks bring, and when the last one came."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.groups: set[str] = set()
        self.done = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive: Alertmanager reuses its connections, as a real receiver would let it.
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.groups.add(body["groupKey"])
                    if len(receiver.groups) >= receiver.expected:
                        receiver.done.set()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = _Server(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _config(receiver_url: str) -> str:
    return json.dumps(
        {
            "route": {
                "receiver": "bench",
                "group_by": ["element"],
                "group_wait": "1s",
                "group_interval": "1m",
                "repeat_interval": "24h",
            },
            "receivers": [
                {
                    "name": "bench",
                    "webhook_configs": [{"url": receiver_url, "send_resolved": False}],
                }
            ],
        }
    )


def alerts(count: int) -> list[dict[str, object]]:
    """One critical SNR alert per element, as a Prometheus rule would fire them."""
    now = datetime.now(UTC).isoformat()
    return [
        {
            "labels": {"alertname": "SNRCritical", "severity": "critical", "element": f"E{i}"},
            "annotations": {"summary": f"SNR bajo en E{i}"},
            "startsAt": now,
        }
        for i in range(count)
    ]


def run(binary: str, count: int, *, timeout: float = 600) -> AlertmanagerRun:
    receiver = _Receiver(count)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-am-") as tmp:
        config = Path(tmp) / "alertmanager.yml"
        config.write_text(_config(receiver.url))  # JSON is YAML
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base)
            batch = alerts(count)
            with CpuMeter({"alertmanager": process.pid}) as cpu, httpx.Client(timeout=60) as http:
                started = time.perf_counter()
                for start in range(0, count, POST_CHUNK):
                    response = http.post(
                        f"{base}/api/v2/alerts", json=batch[start : start + POST_CHUNK]
                    )
                    response.raise_for_status()
                receiver.done.wait(timeout)
                elapsed = time.perf_counter() - started
        finally:
            process.terminate()
            process.wait(timeout=30)
            receiver.server.shutdown()
    return AlertmanagerRun(
        delivered=len(receiver.groups), seconds=elapsed, cpu_seconds=cpu.seconds["alertmanager"]
    )


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/-/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("alertmanager did not become ready")
