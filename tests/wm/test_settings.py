"""GET/PATCH /api/v1/settings: defaults, validation, persistence across app restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.wm.conftest import ADMIN, wm_settings
from wm_service.main import create_app


async def test_defaults_are_context_section_3(client: httpx.AsyncClient) -> None:
    """Without changes the settings are the documented defaults."""
    body = (await client.get("/api/v1/settings", headers=ADMIN)).json()
    assert body["window_hours"] == 24
    assert body["min_critical_incidents"] == 1
    assert body["thresholds"]["snr-upstream"] == {"critical": 25, "major": 28, "minor": 30}
    assert body["thresholds"]["us-service-group"] == {"critical": 70, "major": 60, "minor": 50}
    assert body["thresholds"]["ds-service-group"] == {"critical": 80, "major": 70, "minor": 60}


async def test_patch_changes_only_the_given_fields(client: httpx.AsyncClient) -> None:
    """A partial PATCH keeps every other setting."""
    response = await client.patch(
        "/api/v1/settings",
        json={"min_critical_incidents": 3, "thresholds": {"snr-upstream": {"critical": 24}}},
        headers=ADMIN,
    )
    assert response.status_code == 200
    body = (await client.get("/api/v1/settings", headers=ADMIN)).json()
    assert body["min_critical_incidents"] == 3
    assert body["window_hours"] == 24
    assert body["thresholds"]["snr-upstream"] == {"critical": 24, "major": 28, "minor": 30}


async def test_snr_thresholds_out_of_order_are_rejected(client: httpx.AsyncClient) -> None:
    """SNR needs critical < major < minor; a violation is a 422 naming the kind."""
    response = await client.patch(
        "/api/v1/settings", json={"thresholds": {"snr-upstream": {"critical": 29}}}, headers=ADMIN
    )
    assert response.status_code == 422
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert fields == ["thresholds.snr-upstream"]
    body = (await client.get("/api/v1/settings", headers=ADMIN)).json()
    assert body["thresholds"]["snr-upstream"]["critical"] == 25


async def test_utilisation_threshold_above_100_is_rejected(client: httpx.AsyncClient) -> None:
    """A utilisation limit outside 0-100 % is a 422 naming the level."""
    response = await client.patch(
        "/api/v1/settings",
        json={"thresholds": {"us-service-group": {"critical": 120}}},
        headers=ADMIN,
    )
    assert response.status_code == 422
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert "thresholds.us-service-group.critical" in fields


async def test_window_out_of_range_is_rejected(client: httpx.AsyncClient) -> None:
    """window_hours must be 1..168."""
    response = await client.patch("/api/v1/settings", json={"window_hours": 0}, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "window_hours"


async def test_unknown_setting_is_rejected(client: httpx.AsyncClient) -> None:
    """A misspelt setting is an error, not silently ignored."""
    response = await client.patch("/api/v1/settings", json={"window_hour": 12}, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "window_hour"


async def test_settings_survive_a_restart(wm_database_url: str, tmp_path: Path) -> None:
    """Settings are persisted: a new app on the same database reads them back."""
    for step in ("write", "read"):
        app = create_app(wm_settings(wm_database_url, tmp_path))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://wm.test") as http:
                if step == "write":
                    await http.patch("/api/v1/settings", json={"window_hours": 6}, headers=ADMIN)
                else:
                    body = (await http.get("/api/v1/settings", headers=ADMIN)).json()
    assert body["window_hours"] == 6


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"thresholds": {"snr-upstream": {"critical": False}}}, "thresholds.snr-upstream.critical"),
        ({"min_critical_incidents": True}, "min_critical_incidents"),
        ({"window_hours": 24.0}, "window_hours"),
    ],
    ids=["bool-threshold", "bool-count", "float-hours"],
)
async def test_settings_numbers_are_strict(
    client: httpx.AsyncClient, patch: dict[str, Any], field: str
) -> None:
    """Booleans are not numbers: a settings patch with one is a 422 and changes nothing."""
    before = (await client.get("/api/v1/settings", headers=ADMIN)).json()
    response = await client.patch("/api/v1/settings", json=patch, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]
    assert (await client.get("/api/v1/settings", headers=ADMIN)).json() == before
