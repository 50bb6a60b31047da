"""Re-sent pushes: the same aggregation_id is a no-op that returns the first result."""

from __future__ import annotations

from datetime import timedelta

import httpx

from tests.wm.conftest import ADMIN
from tests.wm.support import T0, entry, push, push_body, sample, tickets

MIN = timedelta(minutes=1)


async def test_repush_returns_the_first_result(client: httpx.AsyncClient) -> None:
    """The second identical push answers exactly what the first did, flagged as a replay."""
    body = push_body(entry("E1", sample(20.0, T0 - MIN)), aggregation_id="agg-1")
    first = await push(client, body)
    second = await push(client, body)
    assert second.status_code == 200
    assert second.json() == first.json()
    assert second.headers.get("Idempotent-Replay") == "true"
    assert "Idempotent-Replay" not in first.headers


async def test_repush_changes_nothing(client: httpx.AsyncClient) -> None:
    """A replay with different content (same id) adds no ticket and no push record."""
    await push(client, push_body(entry("E1", sample(20.0, T0 - MIN)), aggregation_id="agg-1"))
    changed = push_body(entry("E2", sample(20.0, T0 - MIN)), aggregation_id="agg-1")
    response = await push(client, changed)
    assert response.json()["tickets"]["opened"] == 1
    assert [t["entity_id"] for t in await tickets(client)] == ["E1"]
    pushes = (await client.get("/api/v1/aggregations", headers=ADMIN)).json()["items"]
    assert len(pushes) == 1


async def test_same_id_of_another_kind_is_a_new_push(client: httpx.AsyncClient) -> None:
    """aggregation_id is unique per kind, not across kinds."""
    await push(client, push_body(entry("E1", sample(20.0, T0 - MIN)), aggregation_id="agg-1"))
    body = push_body(entry("SG1", sample(90.0, T0 - MIN)), aggregation_id="agg-1")
    response = await push(client, body, "ds-service-group")
    assert "Idempotent-Replay" not in response.headers
    assert response.json()["tickets"]["opened"] == 1
