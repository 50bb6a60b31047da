"""Service-group correlation through real pushes: one group ticket per node problem."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from tests.wm.conftest import ADMIN
from tests.wm.support import T0, entry, iso, push, push_body, sample, ticket_detail, tickets

MIN = timedelta(minutes=1)
H = timedelta(hours=1)
LOC = {"market": "Monterrey", "hub": "MTY01", "ccap": "CCAP02", "service_group": "N0423"}
GROUP_KEY = "snr-service-group:Monterrey/MTY01/CCAP02/N0423"


def channels(*names: str, critical: set[str], at: Any = T0) -> list[dict[str, Any]]:
    """Channels of node N0423; those in `critical` with a critical sample just before `at`."""
    return [
        entry(name, sample(21.0 if name in critical else 34.0, at - MIN), **LOC, subscribers=40)
        for name in names
    ]


async def correlate_from(client: httpx.AsyncClient, channels: int) -> None:
    response = await client.patch(
        "/api/v1/settings", json={"group_min_channels": channels}, headers=ADMIN
    )
    assert response.status_code == 200, response.text


async def group_ticket(client: httpx.AsyncClient) -> dict[str, Any]:
    [ticket] = await tickets(client, kind="snr-service-group")
    return await ticket_detail(client, ticket["id"])


async def test_correlation_is_off_by_default(client: httpx.AsyncClient) -> None:
    """Without the setting, three critical channels of one node are three tickets."""
    settings = (await client.get("/api/v1/settings", headers=ADMIN)).json()
    assert settings["group_min_channels"] == 0
    await push(client, push_body(*channels("A", "B", "C", critical={"A", "B", "C"})))
    assert sorted(t["entity_id"] for t in await tickets(client)) == ["A", "B", "C"]


async def test_a_group_opens_grows_shrinks_and_clears(client: httpx.AsyncClient) -> None:
    """3 critical → one group ticket; D joins; a day later only A; then none → cleared."""
    await correlate_from(client, 3)
    names = ("A", "B", "C", "D")
    # (hours after T0, critical channels): older critical samples leave the 24 h window.
    steps = [(0, {"A", "B", "C"}), (0.25, {"A", "B", "C", "D"}), (25, {"A"}), (50, set())]
    for hours, critical in steps:
        at = T0 + hours * H
        await push(client, push_body(*channels(*names, critical=critical, at=at), at=at))
    detail = await group_ticket(client)
    assert detail["dedup_key"] == GROUP_KEY and detail["category"] == "SNR"
    history = [
        (r["action"], r["ticket"]["reason"], [c["entity_id"] for c in r["ticket"]["channels"]])
        for r in detail["revisions"][:3]
    ]
    assert history == [
        ("open", "critical", ["A", "B", "C"]),
        ("update", "channels_changed", ["A", "B", "C", "D"]),
        ("update", "channels_changed", ["A"]),
    ]
    assert detail["revisions"][3]["action"] == "clear"
    first = detail["revisions"][0]["ticket"]
    assert "Canales críticos (3): A (21 dB), B (21 dB), C (21 dB)." in first["description"]
    # Bonded channels share their modems: the largest channel count, never the sum.
    assert (first["subscribers"], first["priority"]) == (40, "P3")
    assert [t["kind"] for t in await tickets(client)] == ["snr-service-group"]


async def test_channel_tickets_open_before_are_cleared_naming_the_group(
    client: httpx.AsyncClient,
) -> None:
    """Channel tickets opened with correlation off are cleared with a note naming the group."""
    await push(client, push_body(*channels("A", "B", critical={"A", "B"})))
    await correlate_from(client, 3)
    at = T0 + 15 * MIN
    result = await push(
        client, push_body(*channels("A", "B", "C", critical={"A", "B", "C"}, at=at), at=at)
    )
    assert result.json()["tickets"] == {"opened": 1, "updated": 0, "cleared": 2, "unchanged": 0}
    for ticket in await tickets(client, kind="snr-upstream"):
        last = (await ticket_detail(client, ticket["id"]))["ticket"]
        assert (ticket["state"], last["reason"]) == ("cleared", f"grouped:{GROUP_KEY}")
        assert GROUP_KEY in last["description"]
    assert (await group_ticket(client))["state"] == "open"


async def test_a_window_over_some_channels_keeps_them_out_of_the_count(
    client: httpx.AsyncClient,
) -> None:
    """3 critical channels, one under a window: below 3, so two channel tickets, no group."""
    await correlate_from(client, 3)
    window = {"entity_id": "A", "starts_at": iso(T0 - H), "ends_at": iso(T0 + H)}
    body = window | {"reason": "Trabajo en A", "created_by": "noc.ana"}
    created = await client.post("/api/v1/maintenance-windows", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    result = await push(client, push_body(*channels("A", "B", "C", critical={"A", "B", "C"})))
    assert (result.json()["tickets"]["opened"], result.json()["suppressed"]) == (2, 1)
    assert sorted(t["entity_id"] for t in await tickets(client)) == ["B", "C"]


async def test_a_window_over_an_open_group_notes_its_start_and_end(
    client: httpx.AsyncClient,
) -> None:
    """A node window over an open group ticket: one note at its start, one at its end."""
    await correlate_from(client, 3)
    names = ("A", "B", "C")
    await push(client, push_body(*channels(*names, critical=set(names))))
    window = {"service_group": "N0423", "starts_at": iso(T0 + 10 * MIN), "ends_at": iso(T0 + H)}
    body = window | {"reason": "Balanceo del nodo", "created_by": "noc.ana"}
    created = await client.post("/api/v1/maintenance-windows", json=body, headers=ADMIN)
    window_id = created.json()["id"]
    for minutes in (15, 30, 75):
        at = T0 + minutes * MIN
        await push(client, push_body(*channels(*names, critical=set(names), at=at), at=at))
    detail = await group_ticket(client)
    assert [r["reason"] for r in detail["revisions"]] == [
        "critical",
        f"maintenance:{window_id}",
        f"maintenance_ended:{window_id}",
    ]
    assert "Balanceo del nodo" in detail["revisions"][1]["ticket"]["description"]
