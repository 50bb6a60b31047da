"""The ticket list's end-to-end view: stage, BE, platform numbers and last error per ticket,
the filters over them, and a 422 naming any unknown parameter or bad value."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlmodel import col

from tests.wm.conftest import ADMIN
from tests.wm.support import T0, entry, push, push_body, sample, ticket_detail, tickets
from ticketing_common.db import session_scope
from wm_service.models import TicketDelivery
from wm_service.services.tickets import count_by_stage

MIN = timedelta(minutes=1)
LOCATIONS = {"E0": ("MTY", "MTY01"), "E1": ("MTY", "MTY02"), "E2": ("GDL", "GDL01")}


async def seed(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    """Three open SNR tickets; E0 completed at be-1 with its numbers, E1 in error at be-2."""
    entries = [
        entry(e, sample(20.0, T0 - MIN), market=market, hub=hub)
        for e, (market, hub) in LOCATIONS.items()
    ]
    assert (await push(client, push_body(*entries))).status_code == 200
    ids = {t["entity_id"]: t["id"] for t in await tickets(client)}
    outcomes: dict[str, dict[str, Any]] = {
        "E0": {
            "backend_name": "be-1",
            "stage": "completed",
            "incident_public_id": "101",
            "work_order_number": "00000042",
        },
        "E1": {
            "backend_name": "be-2",
            "stage": "error",
            "outcome_operation": "create",
            "outcome_error": "HTTP 400: bad field",
        },
    }
    async for session in session_scope(app.state.sessionmaker):
        for entity, values in outcomes.items():
            await session.exec(
                update(TicketDelivery)
                .where(col(TicketDelivery.ticket_id) == ids[entity])
                .values(status="delivered", **values)
            )
    return ids


async def entities(client: httpx.AsyncClient, **params: Any) -> list[str]:
    return sorted(t["entity_id"] for t in await tickets(client, **params))


async def test_each_ticket_shows_its_stage_be_numbers_and_error(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The list shows the latest revision's stage and BE, the numbers and the last error."""
    await seed(app, client)
    by_entity = {t["entity_id"]: t for t in await tickets(client)}
    assert (by_entity["E0"]["stage"], by_entity["E0"]["backend"]) == ("completed", "be-1")
    assert (by_entity["E0"]["incident_public_id"], by_entity["E0"]["work_order_number"]) == (
        "101",
        "00000042",
    )
    assert (by_entity["E1"]["stage"], by_entity["E1"]["last_error"]) == (
        "error",
        "HTTP 400: bad field",
    )
    assert by_entity["E1"]["last_error_operation"] == "create"
    assert (by_entity["E2"]["stage"], by_entity["E2"]["backend"]) == ("pending", None)


async def test_the_detail_shows_each_revisions_delivery_outcome(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Each revision of the detail carries its delivery's stage and platform numbers."""
    ids = await seed(app, client)
    detail = await ticket_detail(client, ids["E0"])
    (revision,) = detail["revisions"]
    assert revision["delivery"]["stage"] == "completed"
    assert revision["delivery"]["work_order_number"] == "00000042"
    assert detail["stage"] == "completed"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"stage": "completed"}, ["E0"]),
        ({"stage": "error"}, ["E1"]),
        ({"stage": "pending"}, ["E2"]),
        ({"stage": "moved"}, []),
        ({"incident": "101"}, ["E0"]),
        ({"work_order": "00000042"}, ["E0"]),
        ({"work_order": "99"}, []),
        ({"market": "MTY"}, ["E0", "E1"]),
        ({"hub": "GDL01"}, ["E2"]),
        ({"market": "MTY", "hub": "MTY02"}, ["E1"]),
        ({"kind": "snr-upstream", "category": "SNR"}, ["E0", "E1", "E2"]),
        ({"kind": "us-service-group"}, []),
        ({"entity": "E2"}, ["E2"]),
        ({"opened_from": "2000-01-01T00:00:00Z"}, ["E0", "E1", "E2"]),
        ({"opened_to": "2000-01-01T00:00:00Z"}, []),
        ({"updated_from": "2999-01-01T00:00:00Z"}, []),
        ({"updated_to": "2999-01-01T00:00:00+00:00"}, ["E0", "E1", "E2"]),
    ],
)
async def test_filters(
    app: FastAPI, client: httpx.AsyncClient, params: dict[str, str], expected: list[str]
) -> None:
    """Each filter keeps exactly the matching tickets; filters combine with AND."""
    await seed(app, client)
    assert await entities(client, **params) == expected


async def test_the_counts_follow_the_stage_filter(app: FastAPI, client: httpx.AsyncClient) -> None:
    """counts (per state) are taken under every filter but state, stage included."""
    await seed(app, client)
    response = await client.get("/api/v1/tickets", params={"stage": "error"}, headers=ADMIN)
    assert response.json()["counts"] == {"open": 1, "cleared": 0}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "Error"}, "query.status"),
        ({"stage": "Error"}, "query.stage"),
        ({"opened_from": "yesterday"}, "query.opened_from"),
        ({"updated_to": datetime(2026, 1, 1).isoformat()}, "query.updated_to"),  # no zone
        ({"limit": "0"}, "query.limit"),
        ({"incident": "x" * 65}, "query.incident"),
    ],
)
async def test_unknown_parameters_and_bad_values_are_422_naming_them(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    """`?status=Error` is not silently ignored: unknown and bad parameters are named."""
    response = await client.get("/api/v1/tickets", params=params, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]


async def test_an_unknown_parameter_still_needs_a_token(client: httpx.AsyncClient) -> None:
    """Authentication comes first: without a token the answer is 401, not 422."""
    response = await client.get("/api/v1/tickets", params={"status": "Error"})
    assert response.status_code == 401


async def test_open_tickets_are_counted_by_stage(app: FastAPI, client: httpx.AsyncClient) -> None:
    """The overview's and the metrics' counts: the stages other than completed are counted
    through their deliveries, completed as the rest."""
    await seed(app, client)
    async for session in session_scope(app.state.sessionmaker):
        assert await count_by_stage(session, state="open") == {
            "completed": 1,
            "error": 1,
            "pending": 1,
        }
        assert await count_by_stage(session, state="cleared") == {}
