"""Real-Postgres fixtures: one embedded server per test session (each pytest-xdist worker
is a session of its own), a fresh database per test.

Each service's schema is built once per session by its real Alembic migrations into a
template database; every test then gets its own copy (CREATE DATABASE … TEMPLATE), which is
fast and isolates tests completely, background workers and separate processes included.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support.ports import LOCK_DIR, claim_port_range, fixed_port_range
from ticketing_common import embedded_pg
from ticketing_common.migrate import upgrade_to_head

SERVICES = ("wm", "be")

# Each xdist worker draws its free ports from a range it alone holds (tests/support/ports.py),
# held for the worker's life; the processes it starts find the range in their environment.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and _worker[2:].isdigit():
    try:
        _ports = claim_port_range()
    except OSError as exc:
        warnings.warn(
            f"no port lock file could be made in {LOCK_DIR} ({exc}): the workers' port "
            "ranges go by their numbers, and another suite on this host would share them",
            stacklevel=1,
        )
        _ports = fixed_port_range(int(_worker[2:]))
    if _ports is None:
        warnings.warn(
            "every port range is held by other test runs: this worker takes the kernel's "
            "free ports, which one test's restarted service may find taken by another's",
            stacklevel=1,
        )
    else:
        os.environ[embedded_pg.PORT_RANGE_ENV] = str(_ports)


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync or async code (on a worker thread's loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


class DatabaseFactory:
    """Creates migrated databases on the session's embedded server."""

    def __init__(self, server: embedded_pg.EmbeddedPostgres) -> None:
        self.server = server
        self._templates: dict[str, str] = {}

    async def _execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.server.sync_dsn("postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def empty(self, prefix: str = "t") -> str:
        """A new database with no schema at all (for migration tests)."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        run_sync(self._execute(f'CREATE DATABASE "{name}"'))
        return self.server.url(name)

    def template(self, service: str) -> str:
        if service not in self._templates:
            name = f"template_{service}"
            run_sync(self._execute(f'DROP DATABASE IF EXISTS "{name}"'))
            run_sync(self._execute(f'CREATE DATABASE "{name}"'))
            run_sync(upgrade_to_head(service, self.server.url(name)))
            self._templates[service] = name
        return self._templates[service]

    def migrated(self, service: str) -> str:
        """A new database at the service's migration head, for one test."""
        template = self.template(service)
        name = f"t_{service}_{uuid.uuid4().hex[:12]}"
        run_sync(self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        return self.server.url(name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        run_sync(self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded_pg.EmbeddedPostgres]:
    data_dir: Path = tmp_path_factory.mktemp("embedded-pg")
    server = embedded_pg.ensure_running(data_dir, durable=False)
    yield server
    embedded_pg.stop(server)


@pytest.fixture(scope="session")
def database_factory(pg_server: embedded_pg.EmbeddedPostgres) -> DatabaseFactory:
    return DatabaseFactory(pg_server)


@pytest.fixture
def make_database(database_factory: DatabaseFactory) -> Iterator[Callable[[str], str]]:
    """`make_database("wm")` → URL of a fresh migrated database, dropped after the test."""
    created: list[str] = []

    def create(service: str) -> str:
        url = database_factory.migrated(service)
        created.append(url)
        return url

    yield create
    for url in created:
        database_factory.drop(url)


@pytest.fixture
def wm_database_url(make_database: Callable[[str], str]) -> str:
    return make_database("wm")


@pytest.fixture
def be_database_url(make_database: Callable[[str], str]) -> str:
    return make_database("be")
