"""A start meets a database that is not up yet: the service waits for it, one WARNING line
per try, and starts once it answers; past its wait it exits saying where and why. What
waiting cannot mend (a database that does not exist) is raised at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.be.conftest import Emulator, be_settings, running_be, wait_until
from tests.be.conftest import emulator as emulator  # the fixture, shared with the BE tests
from tests.support.tcp_proxy import TcpProxy
from ticketing_cli import serve
from ticketing_common.db import DatabaseUnreachable, create_engine, wait_for_database
from ticketing_common.embedded_pg import free_port


def _on_port(url: str, port: int, *, password: str | None = None) -> str:
    parts = urlsplit(url)
    user = parts.username or ""
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{port}"))


def _waits(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "is not reachable yet" in r.getMessage()]


@contextlib.contextmanager
def _watching_for_waits() -> Iterator[asyncio.Event]:
    """An event set once wait_for_database logs its first line."""
    seen = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "is not reachable yet" in record.getMessage():
                seen.set()

    watch = Watch()
    logger = logging.getLogger("ticketing_common.db")
    logger.addHandler(watch)
    try:
        yield seen
    finally:
        logger.removeHandler(watch)


async def test_a_start_waits_for_a_database_that_comes_up_late(
    wm_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = TcpProxy(urlsplit(wm_database_url).port or 5432)
    proxy.cut()
    engine = create_engine(_on_port(wm_database_url, proxy.port))
    try:
        with _watching_for_waits() as seen:
            waiting = asyncio.create_task(wait_for_database(engine, url="x", timeout_seconds=30))
            # The database comes back only once the wait has begun, however slow the machine.
            await asyncio.wait_for(seen.wait(), timeout=60)
        assert not waiting.done()
        proxy.restore()
        await asyncio.wait_for(waiting, timeout=15)
    finally:
        proxy.cut()
        await engine.dispose()
    waits = _waits(caplog)
    assert waits and all(r.levelno == logging.WARNING and r.exc_info is None for r in waits)
    assert "ConnectionRefusedError" in waits[0].getMessage()


async def test_past_its_wait_a_start_fails_saying_where_and_why(
    wm_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = _on_port(wm_database_url, free_port(), password="s3cret-pw")
    engine = create_engine(url)
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnreachable) as raised:
            await wait_for_database(engine, url=url, timeout_seconds=1.0)
    finally:
        await engine.dispose()
    assert time.monotonic() - started >= 1.0
    message = str(raised.value)
    assert "was unreachable for 1 s: ConnectionRefusedError" in message
    assert "s3cret-pw" not in message and "***" in message
    assert _waits(caplog) and all("s3cret-pw" not in r.getMessage() for r in _waits(caplog))


async def test_a_missing_database_is_not_waited_for(wm_database_url: str) -> None:
    parts = urlsplit(wm_database_url)
    missing = urlunsplit(parts._replace(path="/no_such_database_here"))
    engine = create_engine(missing)
    started = time.monotonic()
    try:
        with pytest.raises(Exception) as raised:
            await wait_for_database(engine, url=missing, timeout_seconds=30)
    finally:
        await engine.dispose()
    assert not isinstance(raised.value, DatabaseUnreachable)
    assert "does not exist" in str(raised.value)
    assert time.monotonic() - started < 10


def test_a_be_starts_once_its_database_comes_up(
    be_database_url: str, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The service wiring: a BE started while its database refuses connections is ready
    once the database answers, instead of exiting."""
    proxy = TcpProxy(urlsplit(be_database_url).port or 5432)
    proxy.cut()

    def restore_once_waiting() -> None:
        # However slow the start, the database comes back only once the BE waits for it.
        wait_until(lambda: _waits(caplog), timeout=60, what="the BE waiting")
        proxy.restore()

    restorer = threading.Thread(target=restore_once_waiting, daemon=True)
    restorer.start()
    try:
        settings = be_settings(_on_port(be_database_url, proxy.port), emulator)
        with running_be(settings) as be:
            assert be.client.get("/readyz").status_code == 200
    finally:
        restorer.join(timeout=60)
        proxy.cut()
    assert _waits(caplog)


def test_a_stop_signal_ends_the_wait_at_once(tmp_path: Path) -> None:
    """uvicorn only notes a signal while the start-up runs: without more, `docker stop` or
    Ctrl-C would wait out the whole database wait. The wait ends at once, saying why in one
    line."""
    env = {
        **os.environ,
        "WM_DATABASE_URL": f"postgresql://wm:pw@127.0.0.1:{free_port()}/wm",
        "WM_DATABASE_WAIT_SECONDS": "300",
        "WM_DATA_DIR": str(tmp_path),
    }
    process = subprocess.Popen(
        serve.argv("wm", "127.0.0.1", free_port()),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("is not reachable yet" in line for line in lines), timeout=60)
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        waited = time.monotonic() - stopped_at
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    output = "".join(lines)
    assert waited < 10, output
    assert "stopped by SIGTERM while waiting for the database at" in output
    assert ":pw@" not in output
    # Said in one line, not under the 50 of Starlette's traceback of the start-up.
    assert "Traceback" not in output, output
