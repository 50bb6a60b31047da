"""The backend registry API: validation, secrecy of the token, auth, counts, removal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.wm.conftest import ADMIN, BACKEND, INGEST, wm_settings
from tests.wm.distribution.conftest import Outbox, scope
from wm_service.main import create_app
from wm_service.models import TicketDelivery

TOKEN = "very-secret-intake-token"
KEYS = [f"ds-service-group:GDL02-CCAP01:N{i:04d}" for i in range(12)]


@pytest.fixture
def app(wm_database_url: str, tmp_path: Path) -> FastAPI:
    # A worker that sleeps between passes keeps the outbox still while a test inspects it.
    return create_app(
        wm_settings(
            wm_database_url,
            tmp_path,
            distribution_poll_seconds=60,
            backend_probe_interval_seconds=60,
        )
    )


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wm.test") as http:
            yield http


def body(url: str = "http://127.0.0.1:8101", token: str = TOKEN) -> dict[str, str]:
    return {"url": url, "intake_token": token}


async def test_put_registers_a_backend_without_echoing_its_token(api: httpx.AsyncClient) -> None:
    """The PUT answers the public view: name, url, available, and no token anywhere."""
    response = await api.put("/api/v1/backends/be-1", json=body(), headers=BACKEND)
    assert response.status_code == 200
    data = response.json()
    assert (data["name"], data["url"], data["available"]) == ("be-1", "http://127.0.0.1:8101", True)
    assert TOKEN not in response.text
    assert "intake_token" not in data


async def test_a_password_in_the_url_is_never_shown(api: httpx.AsyncClient) -> None:
    """A URL registered with user:password@ is listed with the password masked."""
    url = "http://ops:s3cret-pw@127.0.0.1:8101"
    put = await api.put("/api/v1/backends/be-1", json=body(url=url), headers=BACKEND)
    listed = await api.get("/api/v1/backends", headers=ADMIN)
    assert put.json()["url"] == "http://ops:***@127.0.0.1:8101"
    assert listed.json()["backends"][0]["url"] == "http://ops:***@127.0.0.1:8101"
    assert "s3cret-pw" not in put.text + listed.text


async def test_the_list_never_contains_a_token(api: httpx.AsyncClient) -> None:
    """GET /api/v1/backends lists the backends and no token."""
    await api.put("/api/v1/backends/be-1", json=body(), headers=BACKEND)
    response = await api.get("/api/v1/backends", headers=ADMIN)
    assert response.status_code == 200
    assert [b["name"] for b in response.json()["backends"]] == ["be-1"]
    assert TOKEN not in response.text


async def test_a_second_put_is_a_heartbeat_and_an_update(api: httpx.AsyncClient) -> None:
    """Re-registering keeps one backend, moves last_seen_at forward and takes the new URL."""
    first = (await api.put("/api/v1/backends/be-1", json=body(), headers=BACKEND)).json()
    second = (
        await api.put(
            "/api/v1/backends/be-1", json=body("https://be1.noc.example:8443/"), headers=BACKEND
        )
    ).json()
    listed = (await api.get("/api/v1/backends", headers=ADMIN)).json()["backends"]
    assert len(listed) == 1
    assert second["url"] == "https://be1.noc.example:8443"
    assert second["last_seen_at"] > first["last_seen_at"]
    assert second["registered_at"] == first["registered_at"]


async def test_a_non_http_url_is_rejected_naming_the_field(api: httpx.AsyncClient) -> None:
    """An ftp:// URL is a 422 whose details name `url`."""
    response = await api.put("/api/v1/backends/be-1", json=body("ftp://x"), headers=BACKEND)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == ["url"]


async def test_a_missing_token_is_rejected_naming_the_field(api: httpx.AsyncClient) -> None:
    """A body without intake_token is a 422 whose details name `intake_token`."""
    response = await api.put(
        "/api/v1/backends/be-1", json={"url": "http://127.0.0.1:1"}, headers=BACKEND
    )
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == ["intake_token"]


async def test_a_bad_backend_name_is_rejected_naming_the_field(api: httpx.AsyncClient) -> None:
    """A name outside the allowed pattern is a 422 naming the path parameter."""
    response = await api.put("/api/v1/backends/-bad*name", json=body(), headers=BACKEND)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == ["path.name"]


async def test_no_token_is_401(api: httpx.AsyncClient) -> None:
    """Without a bearer token the registry answers 401."""
    assert (await api.get("/api/v1/backends")).status_code == 401
    assert (await api.put("/api/v1/backends/be-1", json=body())).status_code == 401


async def test_the_ingest_token_is_403(api: httpx.AsyncClient) -> None:
    """The aggregator's token does not open the registry: 403."""
    assert (await api.get("/api/v1/backends", headers=INGEST)).status_code == 403
    response = await api.put("/api/v1/backends/be-1", json=body(), headers=INGEST)
    assert response.status_code == 403


async def test_deleting_an_unknown_backend_is_404(api: httpx.AsyncClient) -> None:
    """DELETE of a name that is not registered is a 404."""
    response = await api.delete("/api/v1/backends/nobody", headers=ADMIN)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.fixture
def outbox(app: FastAPI, api: httpx.AsyncClient) -> Outbox:
    sessionmaker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    return Outbox(sessionmaker)


async def place(outbox: Outbox, *, backend: str, delivered: int) -> None:
    """Put every row on `backend`, the first `delivered` of them already delivered."""
    rows = await outbox.rows()
    async with scope(outbox.sessionmaker) as session:
        await session.exec(update(TicketDelivery).values(backend_name=backend))
        done = [r.id for r in rows[:delivered]]
        await session.exec(
            update(TicketDelivery)
            .where(col(TicketDelivery.id).in_(done))
            .values(status="delivered")
        )


async def test_the_list_counts_each_backends_tickets(
    api: httpx.AsyncClient, outbox: Outbox
) -> None:
    """assigned / pending / delivered per backend, and the unassigned backlog."""
    await api.put("/api/v1/backends/be-1", json=body(), headers=BACKEND)
    await outbox.add(KEYS)
    await place(outbox, backend="be-1", delivered=5)
    await outbox.add(KEYS[:2])
    async with scope(outbox.sessionmaker) as session:
        await session.exec(
            update(TicketDelivery)
            .where(col(TicketDelivery.revision) == 2)
            .values(backend_name=None)
        )
    listed = (await api.get("/api/v1/backends", headers=ADMIN)).json()
    assert listed["backends"][0]["tickets"] == {"assigned": 12, "pending": 7, "delivered": 5}
    assert listed["unassigned"] == 2


async def test_a_heartbeat_is_answered_with_its_lease_and_without_counting_tickets(
    api: httpx.AsyncClient, outbox: Outbox
) -> None:
    """The BE reads only the lease from the answer to its heartbeat (every few seconds), and
    counting its tickets reads its whole outbox: they are left to GET (null here)."""
    await api.put("/api/v1/backends/be-1", json=body(), headers=BACKEND)
    await outbox.add(KEYS)
    await place(outbox, backend="be-1", delivered=5)

    heartbeat = (await api.put("/api/v1/backends/be-1", json=body(), headers=BACKEND)).json()
    assert heartbeat["tickets"] is None
    assert set(heartbeat["lease"]) == {"generation", "lease_seconds", "max_call_seconds"}
    by_hand = (await api.put("/api/v1/backends/be-1", json=body(), headers=ADMIN)).json()
    shown = (await api.get("/api/v1/backends/be-1", headers=ADMIN)).json()
    assert by_hand["tickets"] == shown["tickets"] == {"assigned": 12, "pending": 7, "delivered": 5}
    assert "lease" not in shown and by_hand["lease"] is None


async def test_deleting_a_backend_moves_its_undelivered_rows_to_the_others(
    api: httpx.AsyncClient, outbox: Outbox
) -> None:
    """After DELETE its pending rows belong to the remaining BE; delivered rows stay put."""
    await api.put("/api/v1/backends/be-1", json=body(), headers=BACKEND)
    await api.put("/api/v1/backends/be-2", json=body("http://127.0.0.1:8102"), headers=BACKEND)
    await outbox.add(KEYS)
    await place(outbox, backend="be-1", delivered=4)
    response = await api.delete("/api/v1/backends/be-1", headers=ADMIN)
    rows = await outbox.rows()
    assert response.status_code == 204
    assert [(r.backend_name, r.status) for r in rows[:4]] == [("be-1", "delivered")] * 4
    assert [(r.backend_name, r.status) for r in rows[4:]] == [("be-2", "pending")] * 8
    names = [
        b["name"] for b in (await api.get("/api/v1/backends", headers=ADMIN)).json()["backends"]
    ]
    assert names == ["be-2"]


async def test_deleting_the_last_backend_leaves_its_rows_waiting_unassigned(
    api: httpx.AsyncClient, outbox: Outbox
) -> None:
    """With no other backend the undelivered rows become unassigned; none is dropped."""
    await api.put("/api/v1/backends/be-1", json=body(), headers=BACKEND)
    await outbox.add(KEYS)
    await place(outbox, backend="be-1", delivered=0)
    await api.delete("/api/v1/backends/be-1", headers=ADMIN)
    rows = await outbox.rows()
    assert [(r.backend_name, r.status) for r in rows] == [(None, "pending")] * len(KEYS)


async def test_a_newer_be_with_fields_this_wm_does_not_know_still_registers(
    api: httpx.AsyncClient,
) -> None:
    """A rolling upgrade may start with the BEs: unknown fields are ignored, not a 422."""
    newer = {**body(), "lease_generation": 7, "capabilities": ["fencing"]}
    response = await api.put("/api/v1/backends/be-9", json=newer, headers=BACKEND)
    assert response.status_code == 200 and response.json()["available"] is True


async def test_a_token_that_cannot_go_in_a_header_is_refused(api: httpx.AsyncClient) -> None:
    """The WM sends the intake and control tokens back in headers: printable ASCII only."""
    for field in ("intake_token", "control_token"):
        response = await api.put(
            "/api/v1/backends/be-8", json={**body(), field: "tok en ünïcode"}, headers=BACKEND
        )
        assert response.status_code == 422 and field in response.text
