"""BE test fixtures: the platform emulators and BE apps served over real HTTP on 127.0.0.1.

Each test gets a fresh emulator and a fresh migrated BE database; helpers build ticket
documents as the WM does and poll with bounded deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from be_service.config import BESettings
from be_service.main import create_app
from emulators.app import create_app as create_emulator_app
from emulators.config import EmulatorSettings
from tests.support import database
from tests.support.servers import serve_in_thread

INTAKE_TOKEN = "test-intake-token"
ADMIN_TOKEN = "test-admin-token"
CORRELATION_FIELD = "TpcCorrelationKey"


def make_ticket(
    dedup_key: str | None = None,
    *,
    ticket_id: str | None = None,
    revision: int = 1,
    action: str = "open",
    kind: str = "snr-upstream",
    priority: str = "P2",
    **extra: Any,
) -> dict[str, Any]:
    """A ticket document as the WM builds it (docs/contracts.md §1)."""
    dedup_key = dedup_key or f"{kind}:MTY01-CCAP02:US-{uuid.uuid4().hex[:8]}"
    return {
        "ticket_id": ticket_id or str(uuid.uuid4()),
        "dedup_key": dedup_key,
        "revision": revision,
        "action": action,
        "kind": kind,
        "category": "SNR" if kind == "snr-upstream" else "Falla de Linea",
        "priority": priority,
        "title": f"SNR bajo en {dedup_key}",
        "description": "SNR crítico en las últimas 24 horas",
        "location": {
            "market": "MTY",
            "hub": "MTY01",
            "ccap": "CCAP02",
            "service_group": None,
            "channel": "US-3/0/1",
            "missing_location": False,
        },
        "subscribers": 42,
        "work_order": {"subject": f"Revisar {dedup_key}", "description": "Revisar nodo"},
        "generated_at": datetime.now(UTC).isoformat(),
        **extra,
    }


def later(ticket: dict[str, Any], revision: int, action: str) -> dict[str, Any]:
    """A later revision of `ticket` (same ticket id and key)."""
    return make_ticket(
        ticket["dedup_key"], ticket_id=ticket["ticket_id"], revision=revision, action=action
    )


def wait_until(predicate: Callable[[], Any], *, timeout: float = 30.0, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


@dataclass
class Emulator:
    url: str
    client: httpx.Client

    def faults(self, **spec: Any) -> None:
        response = self.client.post("/_emulator/faults", json=spec)
        assert response.status_code == 200, response.text

    def stats(self) -> dict[str, Any]:
        return dict(self.client.get("/_emulator/stats").json())

    def requests(self, fragment: str) -> int:
        """Requests so far to endpoints whose key contains `fragment`."""
        return sum(n for key, n in self.stats()["requests"].items() if fragment in key)

    def records(self, kind: str) -> list[dict[str, Any]]:
        response = self.client.get(f"/_emulator/records/{kind}")
        assert response.status_code == 200, response.text
        return list(response.json())

    def cherwell_save(self, save_requests: list[dict[str, Any]]) -> dict[str, Any]:
        """Save business objects through the public Cherwell API, as the NOC's tools do."""
        login = self.client.post(
            "/CherwellAPI/token",
            data={
                "grant_type": "password",
                "client_id": "noc-console",
                "username": "noc",
                "password": "noc-password",
            },
        )
        assert login.status_code == 200, login.text
        response = self.client.post(
            "/CherwellAPI/api/V1/savebusinessobjectbatch",
            json={"saveRequests": save_requests, "stopOnError": False},
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        )
        assert response.status_code == 200, response.text
        body = dict(response.json())
        assert not body["hasError"], body
        return body


@dataclass
class BE:
    url: str
    client: httpx.Client  # carries the admin token
    settings: BESettings
    app: FastAPI

    def worker_polls(self) -> int:
        """How many times this BE's workers have looked for work so far."""
        return int(self.app.state.worker_stats.polls)

    def intake(self, tickets: list[dict[str, Any]]) -> httpx.Response:
        return self.client.post(
            "/api/v1/tickets",
            json={"tickets": tickets},
            headers={"Authorization": f"Bearer {INTAKE_TOKEN}"},
        )

    def patch_settings(self, **values: Any) -> httpx.Response:
        return self.client.patch("/api/v1/settings", json=values)

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/v1/tickets/{ticket_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def counts(self) -> dict[str, int]:
        response = self.client.get("/api/v1/tickets", params={"limit": 1})
        assert response.status_code == 200, response.text
        return dict(response.json()["counts"])

    def wait_all(self, n: int, status: str = "Completed", *, timeout: float = 30.0) -> None:
        wait_until(lambda: self.counts()[status] >= n, timeout=timeout, what=f"{n} {status}")


def reject_commits(database_url: str, table: str) -> None:
    """Make every transaction that wrote to `table` fail at COMMIT (see tests.support)."""
    asyncio.run(database.reject_commits(database_url, table))


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with (
        serve_in_thread(create_emulator_app()) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield Emulator(server.url, client)


@pytest.fixture
def seeded_emulator() -> Iterator[Emulator]:
    """The emulator with a fixed seed: its error rates fail the same requests every run."""
    with (
        serve_in_thread(create_emulator_app(EmulatorSettings(seed=11))) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield Emulator(server.url, client)


def be_settings(database_url: str, emulator: Emulator, **overrides: Any) -> BESettings:
    """Settings of a test BE: fast polling and backoff, tokens known to the tests."""
    values: dict[str, Any] = {
        "name": "be-test",
        "database_url": database_url,
        "intake_token": INTAKE_TOKEN,
        "admin_token": ADMIN_TOKEN,
        "cherwell_url": f"{emulator.url}/CherwellAPI",
        "sfyc_url": f"{emulator.url}/services",
        "bypass_proxy": True,
        "workers": 2,
        "poll_interval_seconds": 0.05,
        "backoff_base_seconds": 0.05,
        "backoff_cap_seconds": 0.2,
        "claim_lease_seconds": 30,
        "request_timeout_seconds": 5,
        "ambiguous_create_delay_seconds": 0.1,
    }
    values.update(overrides)
    return BESettings(**values)


@contextlib.contextmanager
def running_be(settings: BESettings) -> Iterator[BE]:
    app = create_app(settings)
    with (
        serve_in_thread(app) as server,
        httpx.Client(
            base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as client,
    ):
        yield BE(server.url, client, settings, app)


@pytest.fixture
def make_be(be_database_url: str, emulator: Emulator) -> Iterator[Callable[..., BE]]:
    """`make_be(**settings)` → a running BE on this test's database and emulator."""
    with contextlib.ExitStack() as stack:

        def start(**overrides: Any) -> BE:
            return stack.enter_context(
                running_be(be_settings(be_database_url, emulator, **overrides))
            )

        yield start
