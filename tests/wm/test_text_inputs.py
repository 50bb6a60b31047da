"""Text a client sends (push, topology, filters): a NUL, a blank identifier or an overlong
CSV value is a 422 naming the field, never a database error, and nothing is stored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.wm.conftest import ADMIN
from tests.wm.support import T0, entry, iso, push, push_body, sample
from tests.wm.test_csv_and_topology import push_csv

MIN = timedelta(minutes=1)
NUL = "\u0000"


def good_entry(entity_id: str = "E0", **fields: Any) -> dict[str, Any]:
    return entry(entity_id, sample(20.0, T0 - MIN), **fields)


async def stored_counts(client: httpx.AsyncClient) -> tuple[int, int, int]:
    pushes = (await client.get("/api/v1/aggregations", headers=ADMIN)).json()["items"]
    tickets = (await client.get("/api/v1/tickets", headers=ADMIN)).json()["items"]
    backends = (await client.get("/api/v1/backends", headers=ADMIN)).json()["backends"]
    return len(pushes), len(tickets), len(backends)


def fields(response: httpx.Response, status: int = 422) -> list[str]:
    assert response.status_code == status, response.text
    return [d["field"] for d in response.json()["error"]["details"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (push_body(good_entry(f"E{NUL}")), "entries[0].entity_id"),
        (push_body(good_entry("E1", market=f"M{NUL}")), "entries[0].market"),
        (push_body(good_entry("E1"), aggregation_id=f"a{NUL}"), "aggregation_id"),
        (push_body(good_entry("E1"), good_entry("   ")), "entries[1].entity_id"),
    ],
    ids=["nul-entity", "nul-market", "nul-aggregation", "blank-entity"],
)
async def test_json_push_text_is_checked(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    """A NUL in any push string, or a white-space entity_id, is a 422 naming it."""
    assert fields(await push(client, body)) == [field]
    assert await stored_counts(client) == (0, 0, 0)


@pytest.mark.parametrize(
    ("text", "params", "field"),
    [
        (f"entity_id,at,value\nE{NUL}1,{iso(T0 - MIN)},20\n", {}, "line[2].entity_id"),
        (f"entity_id,market,at,value\nE1,M{NUL},{iso(T0 - MIN)},20\n", {}, "line[2].market"),
        (f"entity_id,at,value\nE1,{iso(T0 - MIN)},20\n", {"aggregation_id": f"a{NUL}"}, ""),
        (f"entity_id,at,value\nE1,{iso(T0 - MIN)},20\n", {"aggregation_id": "a" * 201}, ""),
    ],
    ids=["nul-entity", "nul-market", "nul-aggregation", "long-aggregation"],
)
async def test_csv_push_text_is_checked(
    client: httpx.AsyncClient, text: str, params: dict[str, str], field: str
) -> None:
    """CSV cells and the aggregation_id query parameter obey the JSON push's text rules."""
    assert fields(await push_csv(client, text, **params)) == [field or "aggregation_id"]
    assert await stored_counts(client) == (0, 0, 0)


@pytest.mark.parametrize(
    ("content_type", "body", "field"),
    [
        ("application/json", f'{{"elements": [{{"element_id": "E{NUL}"}}]}}'.encode(), None),
        ("text/csv", f"element_id,hub\nE1,H{NUL}\n".encode(), "line[2].hub"),
    ],
    ids=["json", "csv"],
)
async def test_topology_text_is_checked(
    client: httpx.AsyncClient, content_type: str, body: bytes, field: str | None
) -> None:
    """A NUL in a topology element is a 422 naming the element's field."""
    body = body.replace(b"\x00", b"\\u0000") if content_type.endswith("json") else body
    response = await client.put(
        "/api/v1/topology", content=body, headers={**ADMIN, "content-type": content_type}
    )
    assert fields(response) == [field or "elements[0].element_id"]


async def test_entity_filter_with_nul_is_422(client: httpx.AsyncClient) -> None:
    """The tickets list's `entity` filter refuses a NUL instead of sending it to Postgres."""
    response = await client.get("/api/v1/tickets", params={"entity": f"E{NUL}"}, headers=ADMIN)
    assert fields(response) == ["query.entity"]
