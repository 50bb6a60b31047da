"""Real HTTP in tests: serve an ASGI app with uvicorn on a free 127.0.0.1 port.

`serve_in_thread` runs the app in this process (its lifespan included), on its own event
loop in a thread, so tests talk to it over a real socket. For crash/restart tests that need
a process to kill, use `spawn_service` (a `ticketing …` subprocess).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI

from ticketing_common.embedded_pg import free_port

__all__ = ["free_port", "launch_service", "serve_in_thread", "spawn_service"]


@dataclass
class RunningServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, *, port: int | None = None) -> Iterator[RunningServer]:
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    running = RunningServer(f"http://127.0.0.1:{port}", server, thread)
    try:
        yield running
    finally:
        running.stop()


@dataclass
class ServiceProcess:
    url: str
    process: subprocess.Popen[bytes]
    command: str = "service"

    def wait_ready(self, ready_path: str = "/readyz", timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"ticketing {self.command} exited with {self.process.returncode}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + ready_path, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"ticketing {self.command} did not become ready")

    def kill(self) -> None:
        """SIGKILL: the crash case, no shutdown hooks run."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def launch_service(
    command: str, env: Mapping[str, str], *, port: int | None = None
) -> ServiceProcess:
    """Start `ticketing <command> --host 127.0.0.1 --port P` without waiting for it."""
    port = port or free_port()
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
    return ServiceProcess(f"http://127.0.0.1:{port}", process, command)


def spawn_service(
    command: str, env: Mapping[str, str], *, port: int | None = None, ready_path: str = "/readyz"
) -> ServiceProcess:
    """Start `ticketing <command> --host 127.0.0.1 --port P` and wait until it is ready."""
    service = launch_service(command, env, port=port)
    service.wait_ready(ready_path)
    return service
