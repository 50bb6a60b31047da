"""The live services the fuzz suite attacks: a WM, a BE and the platform emulators, each served
by uvicorn on 127.0.0.1 (real HTTP), on fresh migrated databases, with background work paused.

Each target knows which bearer token opens which path, and how to read the state a rejected
request must leave alone: the row counts of its tables (the emulators: their record counts).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from be_service.config import BESettings
from be_service.main import create_app as create_be
from emulators.app import create_app as create_emulators
from tests.conftest import DatabaseFactory
from tests.support.servers import serve_in_thread
from ticketing_common.db import asyncpg_dsn
from wm_service import main as wm_main
from wm_service.config import WMSettings

WM_ADMIN = "fuzz-wm-admin"
WM_INGEST = "fuzz-wm-ingest"
BE_ADMIN = "fuzz-be-admin"
BE_INTAKE = "fuzz-be-intake"
WM_TABLES = (
    "aggregation_push",
    "critical_sample",
    "ticket",
    "ticket_revision",
    "ticket_delivery",
    "topology_element",
    "wm_setting",
    "backend",
)
BE_TABLES = ("ticket_revision", "ticket_attempt", "be_setting")


@dataclass
class Target:
    """One live service under fuzz: its base URL, its tokens by path, its observable state."""

    name: str
    url: str
    token_for: Callable[[str, str], str | None]
    state: Callable[[], dict[str, int]]


class RowCounts:
    """Row counts of named tables over one connection on a private event loop (the fuzz tests
    are synchronous; the services run on their own loops in their server threads)."""

    def __init__(self, database_url: str, tables: tuple[str, ...]) -> None:
        self._loop = asyncio.new_event_loop()
        self._tables = tables
        self._connection: asyncpg.Connection = self._loop.run_until_complete(
            asyncpg.connect(asyncpg_dsn(database_url))
        )

    def __call__(self) -> dict[str, int]:
        # The table names are this module's constants, never input.
        query = " UNION ALL ".join(
            f"SELECT '{table}' AS name, count(*) AS n FROM {table}"  # noqa: S608
            for table in self._tables
        )
        rows = self._loop.run_until_complete(self._connection.fetch(query))
        return {row["name"]: row["n"] for row in rows}

    def close(self) -> None:
        self._loop.run_until_complete(self._connection.close())
        self._loop.close()


@contextlib.contextmanager
def counting(database_url: str, tables: tuple[str, ...]) -> Iterator[RowCounts]:
    counts = RowCounts(database_url, tables)
    try:
        yield counts
    finally:
        counts.close()


@pytest.fixture(scope="module")
def emulators_target() -> Iterator[Target]:
    with (
        serve_in_thread(create_emulators()) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        cherwell = _login(client, "/CherwellAPI/token", grant_type="password", username="noc")
        sfyc = _login(client, "/services/oauth2/token", grant_type="client_credentials")

        def token_for(method: str, path: str) -> str | None:
            return cherwell if path.startswith("/CherwellAPI") else sfyc

        def records() -> dict[str, int]:
            counts: dict[str, int] = client.get("/_emulator/stats").json()["records"]
            return counts

        yield Target("emulators", server.url, token_for, records)


def _login(client: httpx.Client, path: str, **form: str) -> str:
    fields = {"client_id": "fuzz", "client_secret": "fuzz", "password": "fuzz", **form}
    response = client.post(path, data=fields)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture(scope="module")
def wm_target(
    database_factory: DatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Target]:
    url = database_factory.migrated("wm")
    settings = WMSettings(
        database_url=SecretStr(url),
        data_dir=tmp_path_factory.mktemp("fuzz-wm"),
        ingest_token=SecretStr(WM_INGEST),
        admin_token=SecretStr(WM_ADMIN),
    )
    with pytest.MonkeyPatch.context() as patch:
        # Background work paused: no worker may change a row while a request is judged.
        patch.setattr(wm_main, "_background_workers", lambda app: [])
        app = wm_main.create_app(settings)
    with serve_in_thread(app) as server, counting(url, WM_TABLES) as counts:
        yield Target("wm", server.url, lambda method, path: WM_ADMIN, counts)
    database_factory.drop(url)


@pytest.fixture(scope="module")
def be_target(
    database_factory: DatabaseFactory,
    emulators_target: Target,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Target]:
    url = database_factory.migrated("be")
    values: dict[str, Any] = {
        "name": "be-fuzz",
        "database_url": url,
        "data_dir": tmp_path_factory.mktemp("fuzz-be"),
        "intake_token": BE_INTAKE,
        "admin_token": BE_ADMIN,
        "cherwell_url": f"{emulators_target.url}/CherwellAPI",
        "sfyc_url": f"{emulators_target.url}/services",
        "bypass_proxy": True,
        "workers": 1,
        # Background work paused: revisions stay Received (the fuzz keeps this switch off).
        "processing_enabled": False,
    }

    def token_for(method: str, path: str) -> str:
        return BE_INTAKE if (method, path) == ("POST", "/api/v1/tickets") else BE_ADMIN

    with (
        serve_in_thread(create_be(BESettings(**values))) as server,
        counting(url, BE_TABLES) as counts,
    ):
        yield Target("be", server.url, token_for, counts)
    database_factory.drop(url)
