"""Who may do what on /api/v1/backends: the BEs' token registers, heartbeats and reports and
nothing else; the admin token may register a BE by hand but never report for one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.wm.conftest import ADMIN, BACKEND, wm_settings
from wm_service.main import create_app

REGISTRATION = {"url": "http://127.0.0.1:9", "intake_token": "intake"}
HEALTH = {
    "platforms": [
        {"platform": "sfyc", "circuit": "open", "consecutive_failures": 5, "logged_in": True}
    ],
    "processing_enabled": True,
    "revisions": {"Received": 3, "Completed": 10},
    "oldest_received_age_seconds": 12.5,
}
REPORTS = {
    "reports": [
        {
            "ticket_id": "00000000-0000-0000-0000-000000000001",
            "revision": 1,
            "seq": 1,
            "stage": "completed",
            "at": datetime.now(UTC).isoformat(),
        }
    ]
}


@pytest.fixture
async def api(wm_database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(
        wm_settings(wm_database_url, tmp_path, backend_probe_interval_seconds=60)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wm.test") as http:
            yield http


async def test_the_backend_token_registers_with_health_and_reports(
    api: httpx.AsyncClient,
) -> None:
    """A heartbeat makes the BE available and stores its health; its reports are answered."""
    put = await api.put(
        "/api/v1/backends/be-1", json=REGISTRATION | {"health": HEALTH}, headers=BACKEND
    )
    posted = await api.post("/api/v1/backends/be-1/reports", json=REPORTS, headers=BACKEND)
    listed = (await api.get("/api/v1/backends", headers=ADMIN)).json()["backends"]
    assert put.status_code == 200 and put.json()["available"] is True
    assert posted.status_code == 200 and posted.json() == {"applied": 0, "ignored": 1}
    assert listed[0]["health"]["platforms"][0]["circuit"] == "open"
    assert listed[0]["health"]["oldest_received_age_seconds"] == 12.5
    assert listed[0]["health_at"] is not None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/backends"),
        ("GET", "/api/v1/backends/be-1"),
        ("DELETE", "/api/v1/backends/be-1"),
        ("GET", "/api/v1/tickets"),
        ("GET", "/api/v1/settings"),
    ],
)
async def test_the_backend_token_opens_nothing_else(
    api: httpx.AsyncClient, method: str, path: str
) -> None:
    """The BEs' token cannot read tickets, list or remove backends: 403."""
    assert (await api.request(method, path, headers=BACKEND)).status_code == 403


async def test_the_admin_token_cannot_report(api: httpx.AsyncClient) -> None:
    """Reports come from BEs only: the admin token gets 403."""
    response = await api.post("/api/v1/backends/be-1/reports", json=REPORTS, headers=ADMIN)
    assert response.status_code == 403


async def test_a_registration_by_hand_waits_for_its_first_probe(api: httpx.AsyncClient) -> None:
    """A PUT with the admin token is no heartbeat: the BE stays unavailable until a /readyz
    probe succeeds (nothing listens on its URL here), and sends no health."""
    put = await api.put(
        "/api/v1/backends/be-1", json=REGISTRATION | {"health": HEALTH}, headers=ADMIN
    )
    assert put.status_code == 200
    data = put.json()
    assert (data["available"], data["last_seen_at"], data["health"]) == (False, None, None)
