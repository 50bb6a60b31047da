"""The yardstick of bench/e2e.py: Prometheus Alertmanager delivering the same N problems.

What an operator would reach for first: one alert per element, grouped by element
(`group_wait` 1 s), each group delivered to a webhook receiver on loopback. The run posts N
alerts to Alertmanager's API and times until the receiver has seen all N groups. Two
receivers: `bare` (the default, the strict yardstick), a minimal asyncio protocol that costs
next to nothing; `asgi`, built like our platform emulators (bench/webhook_receiver.py), so
that each side pays for the platform stand-in it talks to. Debian's
`prometheus-alertmanager` is installed when it is missing (root only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
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
    # The receiver's own CPU when it is a process of its own (`asgi`), else None.
    receiver_cpu_seconds: float | None = None
    machine: str = ""  # the cores' busy and stolen shares over the run (CpuMeter)


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


class _BareReceiver:
    """A minimal webhook receiver: counts the distinct groups the POSTs bring.

    A bare asyncio protocol on its own thread, not http.server: at 20 000 webhooks a Python
    HTTP stack would burn the very CPU the yardstick is measured on, and its default listen
    backlog (5) drops the SYNs of Alertmanager's burst (TCP retries them 1, 3, 7 ... s later).
    """

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.groups: set[str] = set()
        self.done = threading.Event()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._serve, args=(started,), daemon=True).start()
        started.wait(10)

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            self._loop.create_server(lambda: _Webhook(self), "127.0.0.1", self.port, backlog=1024)
        )
        started.set()
        self._loop.run_forever()
        server.close()

    @property
    def pid(self) -> int | None:
        return None  # a thread of this process

    def received(self, body: bytes) -> None:
        self.groups.add(json.loads(body)["groupKey"])
        if len(self.groups) >= self.expected:
            self.done.set()

    def wait(self, timeout: float) -> int:
        """How many groups arrived, once all have or `timeout` seconds passed."""
        self.done.wait(timeout)
        return len(self.groups)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)


class _AsgiReceiver:
    """bench/webhook_receiver.py in a process of its own, asked for its count every 50 ms."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.webhook_receiver", "--port", str(self.port)]
        )
        self._http = httpx.Client(timeout=5)
        deadline = time.monotonic() + 30
        while self._count() is None:
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.close()
                raise RuntimeError("the webhook receiver did not start")
            time.sleep(0.1)

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def _count(self) -> int | None:
        try:
            return int(self._http.get(f"{self.url}count").json()["groups"])
        except httpx.HTTPError:
            return None

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (count := self._count() or 0) < self.expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return count

    def close(self) -> None:
        self._http.close()
        self._process.terminate()
        self._process.wait(timeout=30)


# The receivers by their --am-receiver name.
RECEIVERS: dict[str, type[_BareReceiver] | type[_AsgiReceiver]] = {
    "bare": _BareReceiver,
    "asgi": _AsgiReceiver,
}


class _Webhook(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, just enough of it: Content-Length bodies, 200 with no body."""

    def __init__(self, receiver: _BareReceiver) -> None:
        self.receiver = receiver
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            self.receiver.received(self.buffer[end + 4 : end + 4 + length])
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


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


def run(
    binary: str, count: int, *, timeout: float = 600, receiver_kind: str = "bare"
) -> AlertmanagerRun:
    receiver = RECEIVERS[receiver_kind](count)
    port = free_port()
    with contextlib.ExitStack() as cleanup, tempfile.TemporaryDirectory(prefix="bench-am-") as tmp:
        cleanup.callback(receiver.close)  # also when Alertmanager does not start
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
            pids = {"alertmanager": process.pid}
            if receiver.pid is not None:
                pids["receiver"] = receiver.pid
            with CpuMeter(pids) as cpu, httpx.Client(timeout=60) as http:
                started = time.perf_counter()
                for start in range(0, count, POST_CHUNK):
                    response = http.post(
                        f"{base}/api/v2/alerts", json=batch[start : start + POST_CHUNK]
                    )
                    response.raise_for_status()
                delivered = receiver.wait(timeout)
                elapsed = time.perf_counter() - started
        finally:
            process.terminate()
            process.wait(timeout=30)
    return AlertmanagerRun(
        delivered=delivered,
        seconds=elapsed,
        cpu_seconds=cpu.seconds["alertmanager"],
        receiver_cpu_seconds=cpu.seconds.get("receiver"),
        machine=cpu.machine(),
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
