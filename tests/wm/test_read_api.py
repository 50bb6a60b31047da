"""Read API: ticket filters and cursor pagination, one ticket's history, recent pushes."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta

import httpx
import pytest

from tests.wm.conftest import ADMIN
from tests.wm.support import T0, entry, push, push_body, sample, tickets

MIN = timedelta(minutes=1)


async def seed(client: httpx.AsyncClient) -> None:
    await push(client, push_body(*(entry(f"E{i}", sample(20.0, T0 - MIN)) for i in range(5))))
    await push(client, push_body(entry("SG1", sample(90.0, T0 - MIN))), "us-service-group")


async def test_filter_by_kind(client: httpx.AsyncClient) -> None:
    """kind= keeps only that aggregation's tickets."""
    await seed(client)
    found = await tickets(client, kind="us-service-group")
    assert [t["entity_id"] for t in found] == ["SG1"]


async def test_filter_by_category(client: httpx.AsyncClient) -> None:
    """category=SNR keeps the snr-upstream tickets."""
    await seed(client)
    found = await tickets(client, category="SNR")
    assert {t["kind"] for t in found} == {"snr-upstream"} and len(found) == 5


async def test_filter_by_state_and_entity(client: httpx.AsyncClient) -> None:
    """state= and entity= combine."""
    await seed(client)
    assert await tickets(client, state="cleared") == []
    [found] = await tickets(client, state="open", entity="E3")
    assert found["entity_id"] == "E3"


async def test_list_counts_tickets_per_state(client: httpx.AsyncClient) -> None:
    """counts gives tickets per state under the kind filter, whatever the page size."""
    await seed(client)
    response = await client.get(
        "/api/v1/tickets", params={"kind": "snr-upstream", "limit": 1}, headers=ADMIN
    )
    assert response.json()["counts"] == {"open": 5, "cleared": 0}


async def test_pagination_visits_every_ticket_once(client: httpx.AsyncClient) -> None:
    """Following next_cursor pages through all tickets without repeats, then stops."""
    await seed(client)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, object] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/tickets", params=params, headers=ADMIN)).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6 and len(set(seen)) == 6


async def test_bad_cursor_is_422(client: httpx.AsyncClient) -> None:
    """A cursor that was not issued by the API is a 422 naming cursor."""
    response = await client.get("/api/v1/tickets", params={"cursor": "xyz"}, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "cursor"


FORGED_CURSORS = [
    "\u00b9",  # sent as %C2%B9
    "99999999999999999999",
    base64.urlsafe_b64encode(b"[1e23]").decode(),
    base64.urlsafe_b64encode(b"[99999999999999999999]").decode(),
    base64.urlsafe_b64encode(
        b'["2026-11-30T12:00:00", "00000000-0000-0000-0000-000000000001"]'
    ).decode(),
]


@pytest.mark.parametrize("path", ["/api/v1/tickets", "/api/v1/aggregations"])
async def test_forged_cursors_are_422_not_500(client: httpx.AsyncClient, path: str) -> None:
    """Non-ASCII, out-of-range, float and offset-less keys are each a 422 naming cursor."""
    for cursor in FORGED_CURSORS:
        response = await client.get(path, params={"cursor": cursor}, headers=ADMIN)
        assert response.status_code == 422, (cursor, response.text)
        assert response.json()["error"]["details"][0]["field"] == "cursor"


async def test_unknown_ticket_is_404(client: httpx.AsyncClient) -> None:
    """GET of a ticket id that does not exist is a 404."""
    response = await client.get(f"/api/v1/tickets/{uuid.uuid4()}", headers=ADMIN)
    assert response.status_code == 404


async def test_ticket_detail_has_contract_fields(client: httpx.AsyncClient) -> None:
    """The current ticket JSON has every field of docs/contracts.md §1."""
    await push(client, push_body(entry("E1", sample(19.0, T0 - MIN), subscribers=3)))
    [ticket] = await tickets(client)
    detail = (await client.get(f"/api/v1/tickets/{ticket['id']}", headers=ADMIN)).json()
    document = detail["ticket"]
    for name in (
        "ticket_id", "dedup_key", "revision", "action", "kind", "category", "priority",
        "title", "description", "location", "subscribers", "work_order", "generated_at",
    ):  # fmt: skip
        assert name in document
    assert document["ticket_id"] == ticket["id"]
    assert (document["category"], document["priority"]) == ("SNR", "P1")  # SNR < 20 dB
    assert set(document["work_order"]) == {"subject", "description"}


async def test_pushes_are_listed_newest_first(client: httpx.AsyncClient) -> None:
    """GET /api/v1/aggregations shows each push's result, newest first."""
    await push(client, push_body(aggregation_id="first"))
    await push(client, push_body(entry("E1", sample(20.0, T0 - MIN)), aggregation_id="second"))
    items = (await client.get("/api/v1/aggregations", headers=ADMIN)).json()["items"]
    assert [p["aggregation_id"] for p in items] == ["second", "first"]
    assert items[0]["tickets"]["opened"] == 1


async def test_openapi_documents_ticket_and_push_schemas(client: httpx.AsyncClient) -> None:
    """The OpenAPI document describes the ticket JSON and the push body."""
    schema = (await client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    assert "TicketDocument" in components and "Push" in components
    body = schema["paths"]["/api/v1/aggregations/{kind}"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/Push"}
