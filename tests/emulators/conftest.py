"""Fixtures for the emulator tests: one real uvicorn server per module, reset before each test.

Tests talk to it over HTTP with httpx, as the BE does; `reset` between tests gives isolation.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from emulators.app import create_app
from emulators.cherwell_store import INCIDENT_BUS_OB_ID
from emulators.state import EmulatorState
from tests.support.servers import serve_in_thread

CORRELATION = "94e3e947b25d42a9f75569bf4c2632538508f43c9c"
STATUS = "5eb3234ae1344c64a19819eda437f18d"
CATEGORY = "9e0b434034e94781ab29598150f388aa"
PRIORITY = "83c36313e97b4e6b9028aff3b401b71c"
DESCRIPTION = "252b836fc72c4149915053ca1131d138"
WORK_ORDER_NUMBER = "9408bdf5e9b99ad9a6f6945e4571f7118b9d92bb7a"
JOURNAL_BUS_OB_ID = "3312d0cebbbe3502f2df0fcf8f0006c7"
PARENT_REC_ID = "9c2a9bd78a74741d50decf4c0f21a956"
DETAILS = "3ec365dd533ddb7ef3d1c111186ce872"
SAVE = "/CherwellAPI/api/V1/savebusinessobjectbatch"
SEARCH = "/CherwellAPI/api/V1/getsearchresults"
UPSERT = "/services/data/v60.0/composite/sobjects/WorkOrder/External_Key__c"
QUERY = "/services/data/v60.0/query"


@dataclass
class Emulator:
    """A running emulator app: its HTTP client and, for clock tricks, its state."""

    client: httpx.Client
    app: FastAPI

    @property
    def state(self) -> EmulatorState:
        state = self.app.state.emulator
        assert isinstance(state, EmulatorState)
        return state

    def cherwell_login(self, **form: str) -> dict[str, Any]:
        data = {"grant_type": "password", "client_id": "cid", "username": "noc", "password": "pw"}
        response = self.client.post("/CherwellAPI/token", data={**data, **form})
        assert response.status_code == 200, response.text
        return response.json()

    def cherwell(self) -> httpx.Client:
        """The same server, with a fresh Cherwell bearer token on every request."""
        token = self.cherwell_login()["access_token"]
        self.client.headers["Authorization"] = f"Bearer {token}"
        return self.client

    def sfyc(self) -> httpx.Client:
        form = {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "s"}
        response = self.client.post("/services/oauth2/token", data=form)
        assert response.status_code == 200, response.text
        self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        return self.client

    def save(self, *requests: dict[str, Any], stop_on_error: bool = False) -> dict[str, Any]:
        body = {"saveRequests": list(requests), "stopOnError": stop_on_error}
        response = self.client.post(SAVE, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def search(self, **body: Any) -> dict[str, Any]:
        response = self.client.post(SEARCH, json={"busObId": INCIDENT_BUS_OB_ID, **body})
        assert response.status_code == 200, response.text
        return response.json()


def incident(**fields: Any) -> dict[str, Any]:
    """A create SaveRequest for an Incident with dirty fields given by id."""
    return {
        "busObId": INCIDENT_BUS_OB_ID,
        "fields": [{"dirty": True, "fieldId": k, "value": v} for k, v in fields.items()],
    }


def work_order(key: str, **fields: Any) -> dict[str, Any]:
    """A WorkOrder record for the upsert, keyed by External_Key__c."""
    return {"attributes": {"type": "WorkOrder"}, "External_Key__c": key, "Subject": "s", **fields}


def upsert(emu: Emulator, *records: dict[str, Any], all_or_none: bool = False) -> list[dict]:
    """PATCH the records through the collections upsert and return the UpsertResults."""
    response = emu.client.patch(UPSERT, json={"allOrNone": all_or_none, "records": list(records)})
    assert response.status_code == 200, response.text
    return response.json()


def values(read_response: dict[str, Any]) -> dict[str, str]:
    """A ReadResponse's fields as {name: value}."""
    return {f["name"]: f["value"] for f in read_response["fields"]}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, FastAPI]]:
    app = create_app()
    with serve_in_thread(app) as running:
        yield running.url, app


@pytest.fixture
def emu(server: tuple[str, FastAPI]) -> Iterator[Emulator]:
    url, app = server
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.post("/_emulator/reset").status_code == 200
        yield Emulator(client, app)
    # A test may have frozen the clock; the next test gets real time again.
    app.state.emulator.clock = time.time


@pytest.fixture
def start_app() -> Iterator[Callable[[FastAPI], Emulator]]:
    """Serve extra emulator apps (own settings) for one test; all stopped afterwards."""
    with contextlib.ExitStack() as stack:

        def start(app: FastAPI) -> Emulator:
            running = stack.enter_context(serve_in_thread(app))
            client = stack.enter_context(httpx.Client(base_url=running.url, timeout=10))
            return Emulator(client, app)

        yield start
