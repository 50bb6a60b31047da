"""Real HTTP in tests: serve an ASGI app with uvicorn on a free 127.0.0.1 port.

`serve_in_thread` runs the app in this process (its lifespan included), on its own event
loop in a thread, so tests talk to it over a real socket. For crash/restart tests that need
a process to kill, use `spawn_service` (a `ticketing …` subprocess).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from ticketing_cli.stack import Child, launch
from ticketing_common.embedded_pg import free_port

ServiceProcess = Child  # a `ticketing` subprocess: .url, .kill(), .stop(), .wait_ready()

__all__ = ["ServiceProcess", "free_port", "launch_service", "serve_in_thread", "spawn_service"]


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
    # A request still running when the test ends (a stand-in told to answer slowly) is
    # cancelled after a second instead of holding the teardown until it finishes.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
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


def launch_service(command: str, env: Mapping[str, str], *, port: int | None = None) -> Child:
    """Start `ticketing <command>` on 127.0.0.1 without waiting for it."""
    return launch(command, command, port=port or free_port(), env=env)


def spawn_service(command: str, env: Mapping[str, str], *, port: int | None = None) -> Child:
    """Start `ticketing <command>` on 127.0.0.1 and wait until /readyz answers."""
    service = launch_service(command, env, port=port)
    service.wait_ready(timeout=90)
    return service
