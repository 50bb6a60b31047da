"""Builders of push bodies for the WM tests."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.wm.conftest import ADMIN, INGEST
from wm_service.services.push_decode import Push, decode_push

# Far enough in the past that pushes a day later are still not in the future.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def sample(value: float, at: datetime, severity: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"at": iso(at), "value": value}
    if severity is not None:
        out["severity"] = severity
    return out


def entry(entity_id: str, *samples: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"entity_id": entity_id, **fields, "samples": list(samples)}


def decoded(body: dict[str, Any]) -> Push:
    """`body` decoded and checked as the push route does (JSON, 5 minutes of clock skew)."""
    return decode_push(
        json.dumps(body).encode(),
        media_type="application/json",
        aggregation_id=None,
        generated_at=None,
        now=datetime.now(UTC),
        skew=timedelta(minutes=5),
    )


def push_body(
    *entries: dict[str, Any], at: datetime = T0, aggregation_id: str | None = None
) -> dict[str, Any]:
    return {
        "aggregation_id": aggregation_id or f"agg-{uuid.uuid4().hex[:10]}",
        "generated_at": iso(at),
        "entries": list(entries),
    }


async def push(
    client: httpx.AsyncClient, body: dict[str, Any], kind: str = "snr-upstream"
) -> httpx.Response:
    return await client.post(f"/api/v1/aggregations/{kind}", json=body, headers=INGEST)


async def tickets(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/tickets", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def ticket_detail(client: httpx.AsyncClient, ticket_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/tickets/{ticket_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    detail: dict[str, Any] = response.json()
    return detail
