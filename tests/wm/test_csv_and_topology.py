"""CSV pushes, the topology inventory and the enrichment of tickets with it."""

from __future__ import annotations

from datetime import timedelta

import httpx

from tests.wm.conftest import ADMIN, INGEST
from tests.wm.support import T0, entry, iso, push, push_body, sample, ticket_detail, tickets

MIN = timedelta(minutes=1)
HEADER = "entity_id,market,hub,ccap,service_group,channel,subscribers,at,value,severity\n"


async def push_csv(client: httpx.AsyncClient, text: str, **params: str) -> httpx.Response:
    params = {"aggregation_id": "csv-1", "generated_at": iso(T0), **params}
    return await client.post(
        "/api/v1/aggregations/snr-upstream",
        content=text.encode(),
        params=params,
        headers={**INGEST, "content-type": "text/csv"},
    )


async def put_topology(client: httpx.AsyncClient, elements: list[dict]) -> httpx.Response:
    return await client.put("/api/v1/topology", json={"elements": elements}, headers=ADMIN)


async def test_csv_rows_are_grouped_per_entity(client: httpx.AsyncClient) -> None:
    """Rows of one entity form one entry; its critical sample opens one ticket."""
    at1, at2 = iso(T0 - 2 * MIN), iso(T0 - MIN)
    text = (
        HEADER
        + f"E1,Monterrey,MTY01,CCAP02,N0423,US-3/0/1,412,{at1},21.4,critical\n"
        + f"E1,Monterrey,MTY01,CCAP02,N0423,US-3/0/1,412,{at2},31.0,\n"
        + f"E2,,,,,,,{at2},33.0,\n"
    )
    response = await push_csv(client, text)
    assert response.status_code == 200, response.text
    assert response.json()["entries"] == 2
    [ticket] = await tickets(client)
    document = (await ticket_detail(client, ticket["id"]))["ticket"]
    assert document["location"]["market"] == "Monterrey"
    assert document["subscribers"] == 412


async def test_csv_bad_value_names_the_line(client: httpx.AsyncClient) -> None:
    """A non-numeric CSV value is reported as line[N].value and nothing is stored."""
    text = HEADER + f"E1,,,,,,,{iso(T0 - MIN)},21.4,\nE2,,,,,,,{iso(T0 - MIN)},abc,\n"
    response = await push_csv(client, text)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "line[3].value"
    assert await tickets(client) == []


async def test_csv_subscribers_beyond_int32_name_the_line(client: httpx.AsyncClient) -> None:
    """A CSV subscriber count above 2**31-1 is a 422 naming line[N].subscribers."""
    text = HEADER + f"E1,,,,,,{2**31},{iso(T0 - MIN)},21.4,\n"
    response = await push_csv(client, text)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "line[2].subscribers"
    assert await tickets(client) == []


async def test_csv_unknown_column_is_rejected(client: httpx.AsyncClient) -> None:
    """An unexpected CSV column is reported on the header."""
    response = await push_csv(client, "entity_id,at,value,colour\n")
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "header"


async def test_csv_without_aggregation_id_is_rejected(client: httpx.AsyncClient) -> None:
    """CSV pushes need aggregation_id in the query."""
    response = await push_csv(client, HEADER, aggregation_id="")
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "aggregation_id"


async def test_csv_contradicting_rows_are_rejected(client: httpx.AsyncClient) -> None:
    """Two rows of one entity naming different markets are an error on the second row."""
    text = HEADER + f"E1,A,,,,,,{iso(T0 - 2 * MIN)},30,\nE1,B,,,,,,{iso(T0 - MIN)},30,\n"
    response = await push_csv(client, text)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "line[3].market"


async def test_topology_fills_location_missing_from_the_push(client: httpx.AsyncClient) -> None:
    """An entity known to the inventory gets its market, hub, CCAP and subscribers."""
    response = await put_topology(
        client,
        [{"element_id": "E1", "market": "GDL", "hub": "GDL02", "ccap": "C1", "subscribers": 80}],
    )
    assert response.json() == {"upserted": 1}
    await push(client, push_body(entry("E1", sample(21.0, T0 - MIN))))
    [ticket] = await tickets(client)
    document = (await ticket_detail(client, ticket["id"]))["ticket"]
    assert document["location"]["hub"] == "GDL02"
    assert document["location"]["missing_location"] is False
    assert (document["subscribers"], document["priority"]) == (80, "P2")


async def test_push_fields_override_the_inventory(client: httpx.AsyncClient) -> None:
    """A field given in the push wins over the inventory's value."""
    await put_topology(client, [{"element_id": "E1", "market": "GDL", "hub": "H", "ccap": "C"}])
    await push(client, push_body(entry("E1", sample(21.0, T0 - MIN), market="Monterrey")))
    [ticket] = await tickets(client)
    document = (await ticket_detail(client, ticket["id"]))["ticket"]
    assert (document["location"]["market"], document["location"]["hub"]) == ("Monterrey", "H")


async def test_service_group_element_locates_a_channel(client: httpx.AsyncClient) -> None:
    """A channel unknown to the inventory is located through its service group's element."""
    await put_topology(
        client, [{"element_id": "N0423", "market": "MTY", "hub": "MTY01", "ccap": "CCAP02"}]
    )
    body = push_body(entry("E1", sample(21.0, T0 - MIN), service_group="N0423"))
    await push(client, body)
    [ticket] = await tickets(client)
    document = (await ticket_detail(client, ticket["id"]))["ticket"]
    assert document["location"]["ccap"] == "CCAP02"
    assert document["location"]["missing_location"] is False


async def test_unknown_element_is_flagged_missing_location(client: httpx.AsyncClient) -> None:
    """An entity unknown to the push and the inventory still gets a ticket, flagged."""
    await push(client, push_body(entry("E404", sample(21.0, T0 - MIN))))
    [ticket] = await tickets(client)
    document = (await ticket_detail(client, ticket["id"]))["ticket"]
    assert document["location"]["missing_location"] is True
    assert "ubicación desconocida" in document["description"]


async def test_topology_csv_upserts(client: httpx.AsyncClient) -> None:
    """The inventory also loads from CSV, and a second load replaces an element."""
    for hub in ("H1", "H2"):
        response = await client.put(
            "/api/v1/topology",
            content=f"element_id,market,hub,ccap,subscribers\nE1,M,{hub},C,5\n".encode(),
            headers={**ADMIN, "content-type": "text/csv"},
        )
        assert response.json() == {"upserted": 1}
    await push(client, push_body(entry("E1", sample(21.0, T0 - MIN))))
    [ticket] = await tickets(client)
    assert (await ticket_detail(client, ticket["id"]))["ticket"]["location"]["hub"] == "H2"


async def test_topology_bad_subscribers_names_the_element(client: httpx.AsyncClient) -> None:
    """A negative subscriber count is a 422 naming elements[1].subscribers."""
    response = await put_topology(
        client, [{"element_id": "E1"}, {"element_id": "E2", "subscribers": -1}]
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "elements[1].subscribers"


async def test_topology_subscribers_beyond_int32_name_the_element(
    client: httpx.AsyncClient,
) -> None:
    """A subscriber count above 2**31-1 is a 422, not a database error (a 500)."""
    response = await put_topology(client, [{"element_id": "E1", "subscribers": 2**31}])
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "elements[0].subscribers"


async def test_topology_needs_the_admin_token(client: httpx.AsyncClient) -> None:
    """The aggregator's token cannot change the inventory."""
    response = await client.put("/api/v1/topology", json={"elements": []}, headers=INGEST)
    assert response.status_code == 403
