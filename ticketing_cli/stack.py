"""`ticketing up`: the whole system on one machine, on embedded defaults.

Starts one embedded Postgres (the WM's and every BE's database on it), the platform
emulators, the WM and two BEs as child processes, waits until each is ready, and stops
every process it started, by PID, on Ctrl-C or on any failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import httpx

from ticketing_cli import serve
from ticketing_common import embedded_pg
from ticketing_common.db import ensure_database


@dataclass
class DevTokens:
    """Development tokens, made once per data folder and reused, so curl examples keep working."""

    wm_ingest: str
    wm_admin: str
    be_intake: str
    be_admin: str
    # The BEs' token on the WM (WM_BACKEND_TOKEN = BE_WM_TOKEN): registration and reports.
    wm_backend: str
    # The WM's token on the BEs (BE_CONTROL_TOKEN): pause, resume, re-drive.
    be_control: str
    # Prometheus' token (WM_METRICS_TOKEN = BE_METRICS_TOKEN).
    metrics: str

    @classmethod
    def load_or_create(cls, data_dir: Path) -> DevTokens:
        """The folder's tokens; those missing (a folder made by an older version) are made."""
        path = data_dir / "dev-tokens.json"
        known = json.loads(path.read_text()) if path.exists() else {}
        names = [f.name for f in fields(cls)]
        if set(names) <= set(known):
            return cls(**{name: known[name] for name in names})
        tokens = cls(
            **{
                name: known.get(name) or f"dev-{name.replace('_', '-')}-{secrets.token_urlsafe(12)}"
                for name in names
            }
        )
        path.write_text(json.dumps(tokens.__dict__, indent=2))
        path.chmod(0o600)
        return tokens


@dataclass
class Child:
    """One `ticketing <command>` process of the system."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None

    def wait_ready(self, timeout: float = 120) -> None:
        """Until /readyz answers 200; fails early if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                where = f"; see {self.log_path}" if self.log_path else ""
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}{where}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"{self.name} was not ready after {timeout:.0f} s")

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (graceful: in-flight batches finish or roll back), then SIGKILL."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: the crash case, no shutdown hooks run."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


def launch(
    name: str,
    command: str,
    *,
    host: str = "127.0.0.1",
    port: int,
    env: Mapping[str, str],
    log_path: Path | None = None,
) -> Child:
    """Start service `command` on `host`:`port` as `ticketing <command>` runs it (the lean
    server, ticketing_cli/serve.py), with its output to `log_path` when given."""
    argv = serve.argv(command, host, port)
    environment = {**os.environ, **env}
    if log_path is None:
        process = subprocess.Popen(argv, env=environment)
    else:
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                argv, env=environment, stdout=log_file, stderr=subprocess.STDOUT
            )
    return Child(name, f"http://{host}:{port}", process, log_path)


@dataclass
class StackLayout:
    host: str = "127.0.0.1"
    wm_port: int = 8000
    be_ports: tuple[int, ...] = (8101, 8102)
    emulator_port: int = 8200

    @property
    def wm_url(self) -> str:
        return f"http://{self.host}:{self.wm_port}"

    @property
    def emulator_url(self) -> str:
        return f"http://{self.host}:{self.emulator_port}"

    def be_url(self, port: int) -> str:
        return f"http://{self.host}:{port}"

    def ports(self) -> dict[str, int]:
        """Every port this layout listens on, by the name of its service."""
        named = {"wm": self.wm_port, "emulators": self.emulator_port}
        named.update({f"be{index + 1}": port for index, port in enumerate(self.be_ports)})
        return named

    @classmethod
    def on_free_ports(cls, be_count: int = 2) -> StackLayout:
        """A layout that cannot clash with a running `make up` (benchmarks, tests)."""
        return cls(
            wm_port=embedded_pg.free_port(),
            be_ports=tuple(embedded_pg.free_port() for _ in range(be_count)),
            emulator_port=embedded_pg.free_port(),
        )


@dataclass
class Stack:
    """The running system; `stop()` ends every child process and the database it started."""

    data_dir: Path
    layout: StackLayout
    tokens: DevTokens
    database: embedded_pg.EmbeddedPostgres
    children: list[Child] = field(default_factory=list)

    def spawn(self, name: str, command: str, port: int, env: Mapping[str, str]) -> Child:
        log_dir = self.data_dir / "logs"
        log_dir.mkdir(exist_ok=True)
        child = launch(
            name,
            command,
            host=self.layout.host,
            port=port,
            env=env,
            log_path=log_dir / f"{name}.log",
        )
        self.children.append(child)
        return child

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        for child in self.children:
            child.stop()
        self.children.clear()
        if self.database.started_here:
            embedded_pg.stop(self.database)


class PortInUse(RuntimeError):
    """A port of the layout is taken: say which, instead of talking to whatever holds it."""


def check_ports_free(layout: StackLayout) -> None:
    """Fail before starting anything when a port is taken (another `ticketing up`, say):
    otherwise the readiness checks would find the other instance's services and report them
    as ours."""
    taken = []
    for name, port in layout.ports().items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((layout.host, port))
            except OSError:
                taken.append(f"{port} ({name})")
    if taken:
        raise PortInUse(
            f"port(s) {', '.join(taken)} already in use on {layout.host}: another "
            "`ticketing up` or another program is listening there. Stop it, or choose other "
            "ports with --wm-port / --be-ports / --emulator-port."
        )


def start_stack(data_dir: Path, layout: StackLayout) -> Stack:
    """Start everything and return once every service answers /readyz."""
    check_ports_free(layout)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    database = embedded_pg.ensure_running(data_dir)
    stack = Stack(data_dir, layout, DevTokens.load_or_create(data_dir), database)
    try:
        be_names = [f"be{index + 1}" for index in range(len(layout.be_ports))]
        for name in ["wm", *(f"be_{n}" for n in be_names)]:
            asyncio.run(ensure_database(database.url(name)))
        tokens = stack.tokens
        children = [
            stack.spawn("emulators", "emulators", layout.emulator_port, {}),
            stack.spawn(
                "wm",
                "wm",
                layout.wm_port,
                {
                    "WM_DATABASE_URL": database.url("wm"),
                    "WM_INGEST_TOKEN": tokens.wm_ingest,
                    "WM_ADMIN_TOKEN": tokens.wm_admin,
                    "WM_METRICS_TOKEN": tokens.metrics,
                    "WM_BACKEND_TOKEN": tokens.wm_backend,
                },
            ),
        ]
        for name, port in zip(be_names, layout.be_ports, strict=True):
            children.append(
                stack.spawn(
                    name,
                    "be",
                    port,
                    {
                        "BE_NAME": name,
                        "BE_DATABASE_URL": database.url(f"be_{name}"),
                        "BE_PUBLIC_URL": layout.be_url(port),
                        "BE_INTAKE_TOKEN": tokens.be_intake,
                        "BE_ADMIN_TOKEN": tokens.be_admin,
                        "BE_CONTROL_TOKEN": tokens.be_control,
                        "BE_METRICS_TOKEN": tokens.metrics,
                        "BE_WM_URL": layout.wm_url,
                        "BE_WM_TOKEN": tokens.wm_backend,
                        "BE_PLATFORM_URL": layout.emulator_url,
                    },
                )
            )
        for child in children:
            child.wait_ready()
    except BaseException:
        stack.stop()
        raise
    return stack
