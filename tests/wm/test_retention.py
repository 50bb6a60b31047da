"""Retention on the WM (wm_service/services/retention.py): what is pruned past the horizon,
what never is, in batches, and a pass cut short by a restart finished by the next.

Time is the app's injected clock: pushes are applied "at" it, and the horizon is measured
from it, so weeks pass between two lines of a test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from tests.wm.conftest import ADMIN, INGEST, wm_settings
from ticketing_common.db import session_scope
from wm_service.distribution import assignment
from wm_service.main import create_app
from wm_service.models import PLATFORM_NUMBERS

T0 = datetime(2026, 9, 1, tzinfo=UTC)


@dataclass
class SimClock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


def _entry(entity: str, at: datetime, value: float) -> dict[str, Any]:
    return {
        "entity_id": entity,
        "market": "Monterrey",
        "samples": [{"at": at.isoformat(), "value": value}],
    }


async def _push(
    http: httpx.AsyncClient, clock: SimClock, entries: list[dict[str, Any]]
) -> dict[str, Any]:
    body = {
        "aggregation_id": f"ret-{clock.now.isoformat()}",
        "generated_at": clock.now.isoformat(),
        "entries": entries,
    }
    response = await http.post("/api/v1/aggregations/snr-upstream", json=body, headers=INGEST)
    assert response.status_code == 200, response.text
    return response.json()


async def _sql(app: FastAPI, statement: str, **params: Any) -> list[Any]:
    rows: list[Any] = []
    async for session in session_scope(app.state.sessionmaker):  # commits when it ends
        result = await (await session.connection()).execute(text(statement), params)
        rows = list(result.all()) if result.returns_rows else []
    return rows


async def _count(app: FastAPI, table: str) -> int:
    [(count,)] = await _sql(app, f"SELECT count(*) FROM {table}")  # noqa: S608 (test tables)
    return int(count)


@dataclass
class World:
    app: FastAPI
    clock: SimClock
    http: httpx.AsyncClient


async def _world(wm_database_url: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[World]:
    clock = SimClock()
    settings = wm_settings(
        wm_database_url,
        tmp_path,
        distribution_poll_seconds=60,
        backend_probe_interval_seconds=60,
        retention_days=10,
        retention_interval_seconds=3600,
        **overrides,
    )
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wm.test") as http:
            yield World(app, clock, http)


@pytest.fixture
async def world(wm_database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async for w in _world(wm_database_url, tmp_path):
        yield w


async def _history(world: World) -> None:
    """E1 opens and clears, finished on the platforms; E2 opens and clears, its clear in
    Error on its BE; E3 opens and stays open (updated); 40 days later a push of E9 alone."""
    await _push(world.http, world.clock, [_entry(e, T0, 20.0) for e in ("E1", "E2", "E3")])
    world.clock.now = T0 + timedelta(hours=25)
    later = world.clock.now
    result = await _push(
        world.http,
        world.clock,
        [_entry("E1", later, 35.0), _entry("E2", later, 35.0), _entry("E3", later, 20.0)],
    )
    assert (result["tickets"]["cleared"], result["tickets"]["updated"]) == (2, 1)
    await _sql(
        world.app,
        "UPDATE ticket_delivery SET status = 'delivered', stage = 'completed', "
        "backend_name = 'be1'",
    )
    await _sql(
        world.app,
        "UPDATE ticket_delivery SET stage = 'error' WHERE dedup_key = :key AND revision = 2",
        key="snr-upstream:E2",
    )
    await _sql(
        world.app,
        "INSERT INTO control_action (at, actor, action, request, result) "
        "VALUES (:at, 'noc', 'pause', '{}', '{}')",
        at=T0,
    )
    world.clock.now = T0 + timedelta(days=40)
    await _push(world.http, world.clock, [_entry("E9", world.clock.now, 35.0)])


async def _tickets(world: World) -> dict[str, str]:
    rows = await _sql(world.app, "SELECT entity_id, state FROM ticket")
    return {entity: state for entity, state in rows}


async def test_past_the_horizon_finished_history_goes_and_the_rest_stays(world: World) -> None:
    await _history(world)
    pruned = await world.app.state.retention.prune_once()
    # (No critical sample: the last push already dropped those past the rule window.)
    assert {table: n for table, n in pruned.items() if n} == {
        "ticket": 1,
        "ticket_revision": 4,
        "ticket_delivery": 4,
        "aggregation_push": 2,
        "control_action": 1,
    }
    # E1 is gone whole; E2 (its clear in Error) and the open E3 keep their latest revision,
    # the first ones (completed, holding no platform number) followed by it go.
    assert await _tickets(world) == {"E2": "cleared", "E3": "open"}
    assert await _sql(world.app, "SELECT dedup_key, revision FROM ticket_delivery ORDER BY 1") == [
        ("snr-upstream:E2", 2),
        ("snr-upstream:E3", 2),
    ]
    assert await _count(world.app, "ticket_revision") == 2
    # The latest push of the kind stays; the revisions outlive their pushes, unlinked.
    [(aggregation_id,)] = await _sql(world.app, "SELECT aggregation_id FROM aggregation_push")
    assert aggregation_id == f"ret-{(T0 + timedelta(days=40)).isoformat()}"
    assert await _sql(
        world.app, "SELECT count(*) FROM ticket_revision WHERE push_id IS NOT NULL"
    ) == [(0,)]
    registry = world.app.state.metrics.registry
    assert registry.get_sample_value("wm_retention_pruned_rows_total", {"table": "ticket"}) == 1
    # Nothing is pruned twice, and the open ticket is still served whole.
    assert sum((await world.app.state.retention.prune_once()).values()) == 0
    page = (await world.http.get("/api/v1/tickets", params={"entity": "E3"}, headers=ADMIN)).json()
    [e3] = page["items"]
    detail = (await world.http.get(f"/api/v1/tickets/{e3['id']}", headers=ADMIN)).json()
    assert [r["revision"] for r in detail["revisions"]] == [2]


async def test_nothing_younger_than_the_horizon_is_pruned(world: World) -> None:
    await _history(world)
    world.clock.now = T0 + timedelta(days=10)  # the clear at 25 h is not 10 days old yet
    pruned = await world.app.state.retention.prune_once()
    assert pruned.get("ticket", 0) == 0 and pruned.get("control_action", 0) == 0
    assert pruned.get("ticket_revision", 0) == 0
    assert await _tickets(world) == {"E1": "cleared", "E2": "cleared", "E3": "open"}


async def _numbers(world: World, entity: str) -> tuple[str | None, ...]:
    """The platform numbers the ticket list shows for `entity`'s ticket."""
    page = await world.http.get("/api/v1/tickets", params={"entity": entity}, headers=ADMIN)
    [ticket] = page.json()["items"]
    return tuple(ticket[name] for name in PLATFORM_NUMBERS)


async def _revisions_of(world: World, entity: str, count: int) -> None:
    """`count` revisions of `entity`'s ticket, an hour apart from T0 (each push brings a
    new critical sample: an update)."""
    for hour in range(count):
        world.clock.now = T0 + timedelta(hours=hour)
        await _push(world.http, world.clock, [_entry(entity, world.clock.now, 20.0)])


async def _deliveries(world: World, rows: dict[int, dict[str, Any]]) -> None:
    """Set each revision's delivery (of the one ticket there is) to `rows[revision]`."""
    for revision, values in rows.items():
        columns = {"status": "delivered", "stage": "completed", "backend_name": "be1"}
        columns |= dict.fromkeys(PLATFORM_NUMBERS) | values
        assignments = ", ".join(f"{name} = :{name}" for name in columns)
        await _sql(
            world.app,
            f"UPDATE ticket_delivery SET {assignments} WHERE revision = :revision",  # noqa: S608
            revision=revision,
            **columns,
        )


async def _revisions_left(world: World) -> list[int]:
    rows = await _sql(world.app, "SELECT revision FROM ticket_revision ORDER BY 1")
    return [revision for (revision,) in rows]


async def test_an_open_tickets_history_goes_but_not_its_platform_numbers(world: World) -> None:
    """An element sick for weeks: its ticket's finished revisions past the horizon go, but
    never its latest, the one that ordered its work order, nor the newest holding each of
    its incident's ids: the ticket shows the same numbers before and after."""
    await _revisions_of(world, "E5", 4)
    incident = {"incident_public_id": "INC1", "incident_rec_id": "REC1"}
    await _deliveries(
        world,
        {
            1: incident | {"work_order_id": "W1", "work_order_number": "WO1"},
            2: incident,  # a note on it
            # A Cherwell that answered a note with the record id alone: the newest holder
            # of that id, while the public id is held later too.
            3: {"incident_public_id": "INC1", "incident_rec_id": "REC3"},
            4: {"incident_public_id": "INC1", "stage": "at_backend"},  # on its way
        },
    )
    before = await _numbers(world, "E5")
    assert before == ("INC1", "REC3", "W1", "WO1")

    world.clock.now = T0 + timedelta(days=40)
    pruned = await world.app.state.retention.prune_once()
    assert (pruned["ticket_revision"], pruned["ticket_delivery"]) == (1, 1)
    assert await _revisions_left(world) == [1, 3, 4]
    assert await _numbers(world, "E5") == before

    # Once the latest is completed with both ids, the third is redundant too.
    await _deliveries(world, {4: incident})
    assert (await world.app.state.retention.prune_once())["ticket_revision"] == 1
    assert await _revisions_left(world) == [1, 4]
    assert await _numbers(world, "E5") == ("INC1", "REC1", "W1", "WO1")


@pytest.mark.parametrize(
    ("stage", "status"),
    [
        ("error", "delivered"),
        ("at_backend", "delivered"),
        ("moved", "pending"),
        # A fast BE's report can land before its sender marks the row delivered.
        ("completed", "pending"),
    ],
)
async def test_a_revision_not_finished_stays_though_a_later_one_follows(
    world: World, stage: str, status: str
) -> None:
    await _revisions_of(world, "E6", 3)
    await _deliveries(world, {1: {"stage": stage, "status": status}, 2: {}, 3: {}})
    world.clock.now = T0 + timedelta(days=40)
    await world.app.state.retention.prune_once()
    assert await _revisions_left(world) == [1, 3]


async def test_the_delivery_a_key_is_routed_by_stays(world: World) -> None:
    """The element moved from be1 to be2 (a failover); its latest revision waits unassigned
    (be2 unavailable when it was written): its next backend is still be2's, so the second
    revision, be2's and the newest with a backend, stays though nothing else keeps it."""
    await _revisions_of(world, "E7", 3)
    await _deliveries(
        world,
        {
            1: {"work_order_id": "W1", "work_order_number": "WO1"},
            2: {"backend_name": "be2"},
            3: {"stage": "pending", "status": "pending", "backend_name": None},
        },
    )

    async def routed() -> dict[str, str]:
        async for session in session_scope(world.app.state.sessionmaker):
            return await assignment._latest_backends(session, ["snr-upstream:E7"])
        raise AssertionError("unreachable")

    assert await routed() == {"snr-upstream:E7": "be2"}
    world.clock.now = T0 + timedelta(days=40)
    await world.app.state.retention.prune_once()
    assert await _revisions_left(world) == [1, 2, 3]
    assert await routed() == {"snr-upstream:E7": "be2"}


async def test_small_batches_and_a_restart_mid_pass_end_the_same(
    wm_database_url: str, tmp_path: Path
) -> None:
    """One row per transaction; a pass stopped after two batches (a restart) leaves a
    consistent state, which the next process's pass completes."""
    async for world in _world(wm_database_url, tmp_path, retention_batch_size=1):
        await _history(world)
        first = await world.app.state.retention.prune_once(max_batches=2)
        # Cut after the cleared ticket went, before any push did.
        assert {table: n for table, n in first.items() if n} == {
            "ticket": 1,
            "ticket_revision": 2,
            "ticket_delivery": 2,
        }
        assert await _count(world.app, "aggregation_push") == 3
    async for world in _world(wm_database_url, tmp_path, retention_batch_size=1):
        world.clock.now = T0 + timedelta(days=40)
        await world.app.state.retention.prune_once()
        assert await _tickets(world) == {"E2": "cleared", "E3": "open"}
        assert await _count(world.app, "ticket_revision") == 2
        assert await _count(world.app, "aggregation_push") == 1
        assert await _count(world.app, "control_action") == 0
        assert await _count(world.app, "critical_sample") == 0
