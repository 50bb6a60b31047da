"""/api/v1/maintenance-windows over a real Postgres: create, check, import, change, end, delete."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.wm.conftest import ADMIN, INGEST
from tests.wm.support import T0, iso

URL = "/api/v1/maintenance-windows"
H = timedelta(hours=1)


def window_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hub": "MTY01",
        "starts_at": iso(T0 - H),
        "ends_at": iso(T0 + H),
        "reason": "Cambio de tarjeta en CCAP02",
        "change_ref": "CHG0012345",
        "created_by": "noc.ana",
    }
    return {k: v for k, v in (body | fields).items() if v is not None}


async def add(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post(URL, json=window_body(**fields), headers=ADMIN)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def listed(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(URL, params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def test_a_window_is_created_with_who_and_when(client: httpx.AsyncClient) -> None:
    """The answer carries the scope, the times, who created it and when."""
    created = await add(client)
    assert (created["hub"], created["created_by"], created["updated_by"]) == (
        "MTY01",
        "noc.ana",
        "noc.ana",
    )
    assert created["timezone"] == "America/Mexico_City"
    assert created["created_at"] and created["active"] is False
    assert [w["id"] for w in await listed(client)] == [created["id"]]


async def test_windows_need_the_admin_token(client: httpx.AsyncClient) -> None:
    """The aggregator's token opens no maintenance endpoint."""
    response = await client.post(URL, json=window_body(), headers=INGEST)
    assert response.status_code in (401, 403)
    assert (await client.get(URL)).status_code == 401


BAD = {
    "no scope": ({"hub": None}, "scope"),
    "end before start": ({"ends_at": iso(T0 - 2 * H)}, "ends_at"),
    "longer than 7 days": ({"ends_at": iso(T0 + timedelta(days=8))}, "ends_at"),
    "unknown time zone": ({"timezone": "Mars/Olympus"}, "timezone"),
    "monthly recurrence": ({"recurrence": "FREQ=MONTHLY"}, "recurrence"),
    "no created_by": ({"created_by": None}, "created_by"),
    "naive start": ({"starts_at": "2026-12-01T10:00:00"}, "starts_at"),
}


@pytest.mark.parametrize(("change", "field"), list(BAD.values()), ids=list(BAD))
async def test_bad_windows_are_a_422_naming_the_field_and_store_nothing(
    client: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    """Each row: one bad input, the field the 422 names; no window is stored."""
    response = await client.post(URL, json=window_body(**change), headers=ADMIN)
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["error"]["details"]]
    assert await listed(client) == []


async def test_unknown_market_is_refused_once_a_topology_is_loaded(
    client: httpx.AsyncClient,
) -> None:
    """Without an inventory any market is taken; with one, an unknown market is a 422."""
    await add(client, hub=None, market="Atlantis")
    element = {"element_id": "N1", "market": "Monterrey", "hub": "MTY01", "ccap": "CCAP02"}
    await client.put("/api/v1/topology", json={"elements": [element]}, headers=ADMIN)
    response = await client.post(URL, json=window_body(market="Atlantis"), headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "market"
    await add(client, market="Monterrey")


async def test_csv_import_is_all_or_nothing(client: httpx.AsyncClient) -> None:
    """A good file creates every row; a file with one bad row names its line, creates none."""
    header = "hub,starts_at,ends_at,recurrence,reason,change_ref\n"
    good = f"MTY01,{iso(T0)},{iso(T0 + H)},FREQ=DAILY,Nocturno,CHG1\n"
    bad = f"MTY02,{iso(T0)},{iso(T0 - H)},,Al revés,CHG2\n"
    params = {"created_by": "noc.luis"}
    csv_headers = {**ADMIN, "content-type": "text/csv"}
    refused = await client.post(
        f"{URL}/import", content=header + good + bad, params=params, headers=csv_headers
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"][0]["field"] == "line[3].ends_at"
    assert await listed(client) == []
    accepted = await client.post(
        f"{URL}/import", content=header + good + good, params=params, headers=csv_headers
    )
    assert accepted.status_code == 201, accepted.text
    created = accepted.json()["created"]
    assert [w["created_by"] for w in created] == ["noc.luis", "noc.luis"]
    assert created[0]["recurrence"] == "FREQ=DAILY"


async def test_patch_records_who_changed_it_and_checks_the_result(
    client: httpx.AsyncClient,
) -> None:
    """A change is checked as a whole and records updated_by; a bad one changes nothing."""
    created = await add(client)
    url = f"{URL}/{created['id']}"
    refused = await client.patch(
        url, json={"ends_at": iso(T0 - 2 * H), "updated_by": "noc.eva"}, headers=ADMIN
    )
    assert refused.status_code == 422
    changed = await client.patch(
        url, json={"reason": "Ampliado", "updated_by": "noc.eva"}, headers=ADMIN
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["reason"], body["updated_by"], body["created_by"]) == (
        "Ampliado",
        "noc.eva",
        "noc.ana",
    )
    assert body["ends_at"] == created["ends_at"]


async def test_end_and_delete_are_recorded_and_kept(client: httpx.AsyncClient) -> None:
    """Ending sets ended_at once (409 after); a deleted window is listed only on request."""
    created = await add(client, ends_at=iso(T0 + timedelta(days=5)))
    url = f"{URL}/{created['id']}"
    ended = await client.post(f"{url}/end", json={"ended_by": "noc.eva"}, headers=ADMIN)
    assert ended.status_code == 200, ended.text
    assert ended.json()["ended_at"] and ended.json()["updated_by"] == "noc.eva"
    again = await client.post(f"{url}/end", json={"ended_by": "noc.eva"}, headers=ADMIN)
    assert again.status_code == 409
    deleted = await client.delete(url, params={"deleted_by": "noc.eva"}, headers=ADMIN)
    assert deleted.status_code == 204, deleted.text
    assert await listed(client) == []
    [kept] = await listed(client, include_deleted=True)
    assert kept["deleted_at"] is not None
    assert (await client.get(f"{URL}/999", headers=ADMIN)).status_code == 404


async def test_window_ids_are_digits_within_bigint(client: httpx.AsyncClient) -> None:
    """A window id past bigint is a 422 naming it; /import is never read as an id (405)."""
    response = await client.get(f"/api/v1/maintenance-windows/{2**64}", headers=ADMIN)
    assert response.status_code == 422 and "window_id" in response.text
    response = await client.delete("/api/v1/maintenance-windows/import", headers=ADMIN)
    assert response.status_code == 405 and "POST" in response.headers["allow"]
