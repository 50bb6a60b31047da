"""Ticket lifecycle per (kind, entity): open, update, unchanged, clear, absent left alone."""

from __future__ import annotations

from datetime import timedelta

import httpx

from tests.wm.support import T0, entry, push, push_body, sample, ticket_detail, tickets

MIN = timedelta(minutes=1)
LOC = {"market": "Monterrey", "hub": "MTY01", "ccap": "CCAP02", "service_group": "N0423"}


async def test_critical_entry_opens_a_ticket(client: httpx.AsyncClient) -> None:
    """A critical entry without an open ticket opens one at revision 1."""
    body = push_body(entry("E1", sample(21.0, T0 - 10 * MIN), **LOC, subscribers=30))
    response = await push(client, body)
    assert response.status_code == 200, response.text
    assert response.json()["tickets"] == {"opened": 1, "updated": 0, "cleared": 0, "unchanged": 0}
    [ticket] = await tickets(client)
    assert (ticket["entity_id"], ticket["state"], ticket["revision"]) == ("E1", "open", 1)
    assert ticket["dedup_key"] == "snr-upstream:E1"


async def test_healthy_entry_opens_nothing(client: httpx.AsyncClient) -> None:
    """An entry without critical samples creates no ticket."""
    response = await push(client, push_body(entry("E1", sample(35.0, T0 - MIN))))
    assert response.json()["tickets"]["opened"] == 0
    assert response.json()["critical_entries"] == 0
    assert await tickets(client) == []


async def test_new_critical_sample_updates_the_ticket(client: httpx.AsyncClient) -> None:
    """A later push with a new critical sample adds revision 2 with action update."""
    await push(client, push_body(entry("E1", sample(21.0, T0 - 30 * MIN))))
    later = push_body(entry("E1", sample(22.0, T0 - 15 * MIN)), at=T0 + 15 * MIN)
    response = await push(client, later)
    assert response.json()["tickets"]["updated"] == 1
    [ticket] = await tickets(client)
    detail = await ticket_detail(client, ticket["id"])
    assert [r["action"] for r in detail["revisions"]] == ["open", "update"]
    assert detail["ticket"]["critical_samples"] == 2


async def test_repeated_samples_leave_the_ticket_unchanged(client: httpx.AsyncClient) -> None:
    """A full push repeating the same critical samples adds no revision."""
    samples = [sample(21.0, T0 - 30 * MIN), sample(35.0, T0 - 20 * MIN)]
    await push(client, push_body(entry("E1", *samples)))
    response = await push(client, push_body(entry("E1", *samples), at=T0 + 15 * MIN))
    assert response.json()["tickets"] == {"opened": 0, "updated": 0, "cleared": 0, "unchanged": 1}
    [ticket] = await tickets(client)
    assert ticket["revision"] == 1


async def test_worse_priority_updates_without_new_samples(client: httpx.AsyncClient) -> None:
    """More subscribers affected (a worse priority) is an update even with no new sample."""
    critical = sample(23.0, T0 - 30 * MIN)
    await push(client, push_body(entry("E1", critical, subscribers=12)))
    response = await push(
        client, push_body(entry("E1", critical, subscribers=250), at=T0 + 15 * MIN)
    )
    assert response.json()["tickets"]["updated"] == 1
    [ticket] = await tickets(client)
    assert ticket["priority"] == "P1"


async def test_entry_without_critical_samples_left_is_cleared(client: httpx.AsyncClient) -> None:
    """Present in a push with no critical sample in the window → clear revision."""
    await push(client, push_body(entry("E1", sample(21.0, T0 - 30 * MIN))))
    response = await push(
        client, push_body(entry("E1", sample(33.0, T0 + 24 * 60 * MIN)), at=T0 + 25 * 60 * MIN)
    )
    assert response.json()["tickets"]["cleared"] == 1
    [ticket] = await tickets(client)
    detail = await ticket_detail(client, ticket["id"])
    assert ticket["state"] == "cleared"
    assert detail["revisions"][-1]["action"] == "clear"
    assert detail["ticket"]["action"] == "clear"


async def test_entity_absent_from_a_push_is_left_alone(client: httpx.AsyncClient) -> None:
    """An open ticket whose entity is not in a later push stays open and unrevised."""
    await push(client, push_body(entry("E1", sample(21.0, T0 - 30 * MIN))))
    later = push_body(entry("E2", sample(35.0, T0 + 24 * 60 * MIN)), at=T0 + 25 * 60 * MIN)
    response = await push(client, later)
    assert response.json()["tickets"]["cleared"] == 0
    [ticket] = await tickets(client, entity="E1")
    assert (ticket["state"], ticket["revision"]) == ("open", 1)


async def test_problem_after_a_clear_opens_a_new_ticket(client: httpx.AsyncClient) -> None:
    """A dedup key that turns critical again after a clear gets a new ticket id."""
    await push(client, push_body(entry("E1", sample(21.0, T0 - 30 * MIN))))
    await push(client, push_body(entry("E1"), at=T0 + 25 * 60 * MIN))
    again = push_body(entry("E1", sample(20.5, T0 + 26 * 60 * MIN)), at=T0 + 26 * 60 * MIN)
    response = await push(client, again)
    assert response.json()["tickets"]["opened"] == 1
    found = await tickets(client, entity="E1")
    assert sorted(t["state"] for t in found) == ["cleared", "open"]
    assert len({t["id"] for t in found}) == 2


async def test_each_revision_gets_one_pending_outbox_row(client: httpx.AsyncClient) -> None:
    """Every revision is shown with its delivery, pending and unassigned at first."""
    await push(client, push_body(entry("E1", sample(21.0, T0 - 30 * MIN))))
    await push(client, push_body(entry("E1", sample(21.5, T0 - 5 * MIN)), at=T0 + 15 * MIN))
    [ticket] = await tickets(client)
    detail = await ticket_detail(client, ticket["id"])
    deliveries = [r["delivery"] for r in detail["revisions"]]
    assert len(deliveries) == 2
    for delivery in deliveries:
        assert delivery["status"] == "pending"
        assert delivery["backend_name"] is None
        assert delivery["attempts"] == 0


async def test_a_late_push_is_refused_and_reopens_nothing(client: httpx.AsyncClient) -> None:
    """Critical at T0, cleared at T0+30 h; a push generated at T0+1 h arriving last is a 409."""
    await push(client, push_body(entry("E1", sample(21.0, T0 - 30 * MIN))))
    await push(
        client, push_body(entry("E1", sample(33.0, T0 + 29 * 60 * MIN)), at=T0 + 30 * 60 * MIN)
    )
    late = push_body(entry("E1", sample(33.0, T0 + 50 * MIN)), at=T0 + 60 * MIN)
    response = await push(client, late)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["details"][0]["field"] == "generated_at"
    [ticket] = await tickets(client)
    assert (ticket["state"], ticket["revision"]) == ("cleared", 2)


async def test_replaying_an_older_processed_push_still_returns_its_result(
    client: httpx.AsyncClient,
) -> None:
    """An exact re-send of an earlier push is answered with its first result, not a 409."""
    first = push_body(entry("E1", sample(21.0, T0 - 30 * MIN)))
    answer = await push(client, first)
    await push(client, push_body(entry("E1"), at=T0 + 30 * 60 * MIN))
    again = await push(client, first)
    assert again.status_code == 200, again.text
    assert again.json() == answer.json()


async def test_a_sample_within_the_skew_after_t_counts_in_its_own_push(
    client: httpx.AsyncClient,
) -> None:
    """A critical sample up to the clock skew after T opens the ticket in its own push."""
    early = await push(client, push_body(entry("E1", sample(21.0, T0 + 4 * MIN))))
    later = await push(client, push_body(entry("E1"), at=T0 + 15 * MIN))
    assert early.json()["tickets"]["opened"] == 1
    assert later.json()["tickets"] == {"opened": 0, "updated": 0, "cleared": 0, "unchanged": 1}


async def test_each_revision_says_why_it_was_made(client: httpx.AsyncClient) -> None:
    """The ticket document carries the lifecycle reason: critical, new_samples, recovered."""
    await push(client, push_body(entry("E1", sample(21.0, T0 - 30 * MIN))))
    await push(client, push_body(entry("E1", sample(21.5, T0 - 5 * MIN)), at=T0 + 15 * MIN))
    await push(client, push_body(entry("E1"), at=T0 + 25 * 60 * MIN))
    [ticket] = await tickets(client)
    detail = await ticket_detail(client, ticket["id"])
    reasons = [r["ticket"]["reason"] for r in detail["revisions"]]
    assert reasons == ["critical", "new_samples", "recovered"]
    assert [r["reason"] for r in detail["revisions"]] == reasons
