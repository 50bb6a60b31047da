"""Maintenance windows through real pushes: held back, noted, recorded, and undone by a delete."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from tests.wm.conftest import ADMIN
from tests.wm.support import T0, entry, iso, push, push_body, sample, ticket_detail, tickets

MIN = timedelta(minutes=1)
H = timedelta(hours=1)
URL = "/api/v1/maintenance-windows"
LOC = {"market": "Monterrey", "hub": "MTY01", "ccap": "CCAP02", "service_group": "N0423"}


async def add_window(client: httpx.AsyncClient, **fields: Any) -> int:
    body = {"reason": "Cambio de tarjeta", "change_ref": "CHG42", "created_by": "noc.ana"}
    response = await client.post(URL, json=body | fields, headers=ADMIN)
    assert response.status_code == 201, response.text
    window_id: int = response.json()["id"]
    return window_id


async def suppressed(client: httpx.AsyncClient, window_id: int) -> list[dict[str, Any]]:
    response = await client.get(f"{URL}/{window_id}/suppressed", headers=ADMIN)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_covered_critical_entry_opens_nothing_and_is_recorded(
    client: httpx.AsyncClient,
) -> None:
    """Under a hub window a critical channel gets no ticket; the window lists the held open."""
    window = await add_window(client, hub="MTY01", starts_at=iso(T0 - H), ends_at=iso(T0 + H))
    body = push_body(entry("E1", sample(21.0, T0 - 10 * MIN), **LOC), aggregation_id="agg-1")
    result = (await push(client, body)).json()
    assert result["tickets"]["opened"] == 0 and result["suppressed"] == 1
    assert await tickets(client) == []
    [held] = await suppressed(client, window)
    assert (held["entity_id"], held["action"], held["reason"]) == ("E1", "open", "critical")
    assert (held["aggregation_id"], held["dedup_key"]) == ("agg-1", "snr-upstream:E1")


async def test_a_window_over_an_open_ticket_notes_its_start_and_end_only(
    client: httpx.AsyncClient,
) -> None:
    """Start: one update note; during: new samples held back; end: one more note."""
    await push(client, push_body(entry("E1", sample(21.0, T0 - 30 * MIN), **LOC)))
    window = await add_window(
        client, ccap="CCAP02", starts_at=iso(T0 + 10 * MIN), ends_at=iso(T0 + 2 * H)
    )
    for minutes in (15, 30, 45):  # three pushes under the window, each with a new sample
        at = T0 + minutes * MIN
        await push(client, push_body(entry("E1", sample(19.0, at - MIN), **LOC), at=at))
    after = T0 + 3 * H
    await push(client, push_body(entry("E1", sample(21.5, after - MIN), **LOC), at=after))
    [ticket] = await tickets(client)
    detail = await ticket_detail(client, ticket["id"])
    reasons = [(r["action"], r["ticket"]["reason"]) for r in detail["revisions"]]
    assert reasons == [
        ("open", "critical"),
        ("update", f"maintenance:{window}"),
        ("update", f"maintenance_ended:{window}"),
    ]
    start_note = detail["revisions"][1]["ticket"]
    assert start_note["title"].startswith("Mantenimiento programado")
    assert "CHG42" in start_note["description"]
    assert [s["action"] for s in await suppressed(client, window)] == ["update", "update"]
    # The samples taken during the work do not count, even after it: 2 left of 5.
    assert detail["ticket"]["critical_samples"] == 2


async def test_samples_inside_a_past_window_do_not_count_after_it(
    client: httpx.AsyncClient,
) -> None:
    """The first push after the work opens no ticket for the degradation the work caused."""
    await add_window(client, entity_id="E1", starts_at=iso(T0 - 3 * H), ends_at=iso(T0 - H))
    work = [sample(18.0, T0 - 2 * H), sample(18.5, T0 - 90 * MIN)]
    response = await push(client, push_body(entry("E1", *work, sample(33.0, T0 - MIN), **LOC)))
    assert response.json()["tickets"]["opened"] == 0
    assert response.json()["suppressed"] == 1
    fresh = T0 + 15 * MIN
    response = await push(client, push_body(entry("E1", sample(20.0, fresh), **LOC), at=fresh))
    assert response.json()["tickets"]["opened"] == 1
    [ticket] = await tickets(client)
    assert (await ticket_detail(client, ticket["id"]))["ticket"]["critical_samples"] == 1


async def test_deleting_a_window_makes_its_samples_count_from_the_next_push(
    client: httpx.AsyncClient,
) -> None:
    """A window made by mistake: deleted, the next push judges its samples as usual."""
    window = await add_window(client, hub="MTY01", starts_at=iso(T0 - H), ends_at=iso(T0 + H))
    critical = sample(21.0, T0 - 10 * MIN)
    first = await push(client, push_body(entry("E1", critical, **LOC)))
    assert first.json()["tickets"]["opened"] == 0
    deleted = await client.delete(
        f"{URL}/{window}", params={"deleted_by": "noc.ana"}, headers=ADMIN
    )
    assert deleted.status_code == 204
    later = await push(client, push_body(entry("E1", critical, **LOC), at=T0 + 15 * MIN))
    assert later.json()["tickets"]["opened"] == 1
    [ticket] = await tickets(client)
    assert ticket["revision"] == 1 and ticket["state"] == "open"
    assert len(await suppressed(client, window)) == 1  # what it did stays on record


async def test_a_window_on_some_channels_leaves_the_others_alone(
    client: httpx.AsyncClient,
) -> None:
    """An entity-scoped window holds back its channel only; its neighbours open as usual."""
    await add_window(client, entity_id="E2", starts_at=iso(T0 - H), ends_at=iso(T0 + H))
    entries = [entry(f"E{i}", sample(21.0, T0 - 10 * MIN), **LOC) for i in (1, 2, 3)]
    result = (await push(client, push_body(*entries))).json()
    assert (result["tickets"]["opened"], result["suppressed"]) == (2, 1)
    assert sorted(t["entity_id"] for t in await tickets(client)) == ["E1", "E3"]


async def test_a_window_found_through_the_inventory_covers_the_entity(
    client: httpx.AsyncClient,
) -> None:
    """An entry without a hub in the push is matched by its hub in the topology inventory."""
    element = {"element_id": "E1", "market": "Monterrey", "hub": "MTY01", "ccap": "CCAP02"}
    await client.put("/api/v1/topology", json={"elements": [element]}, headers=ADMIN)
    await add_window(client, hub="MTY01", starts_at=iso(T0 - H), ends_at=iso(T0 + H))
    response = await push(client, push_body(entry("E1", sample(21.0, T0 - 10 * MIN))))
    assert response.json()["suppressed"] == 1
    assert await tickets(client) == []


async def test_a_nightly_mexico_city_window_is_judged_in_utc(client: httpx.AsyncClient) -> None:
    """Daily 23:00-03:00 America/Mexico_City (05:00-09:00 UTC): 06:00 UTC held, 10:00 not."""
    night = (T0 - timedelta(days=2)).replace(hour=5, minute=0, second=0)  # 23:00 local
    await add_window(
        client,
        hub="MTY01",
        starts_at=iso(night),
        ends_at=iso(night + 4 * H),
        recurrence="FREQ=DAILY",
        timezone="America/Mexico_City",
    )
    inside = night + timedelta(days=2, hours=1)  # 06:00 UTC = 00:00 local
    held = await push(client, push_body(entry("E1", sample(21.0, inside), **LOC), at=inside))
    assert (held.json()["tickets"]["opened"], held.json()["suppressed"]) == (0, 1)
    outside = inside + 4 * H  # 10:00 UTC = 04:00 local
    fresh = await push(client, push_body(entry("E2", sample(21.0, outside), **LOC), at=outside))
    assert fresh.json()["tickets"]["opened"] == 1
