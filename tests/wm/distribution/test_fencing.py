"""Fencing on the WM (wm_service/distribution/fencing.py): a failover bumps the silent BE's
generation once, takes back what it accepted but did not finish, and nothing it accepted under
a replaced generation counts as delivered."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import update
from sqlmodel import col

from tests.wm.conftest import ADMIN, BACKEND, wm_settings
from tests.wm.distribution.conftest import (
    KEYS,
    Outbox,
    RunWorker,
    Sessions,
    StandIn,
    StandInBE,
    all_delivered,
    register,
    scope,
)
from ticketing_common.outcome import OutcomeReport
from wm_service.config import WMSettings
from wm_service.distribution import delivery, fencing, registry, reports
from wm_service.main import create_app
from wm_service.models import TicketDelivery


async def _generation(sessionmaker: Sessions, name: str) -> int:
    async with scope(sessionmaker) as session:
        return (await registry.get(session, name=name)).generation


async def _keep_heartbeating(sessionmaker: Sessions, name: str, backend: StandInBE) -> None:
    while True:
        await register(sessionmaker, name, backend, heartbeat=True)
        await asyncio.sleep(0.1)


async def _set(sessionmaker: Sessions, row_id: int, **values: object) -> None:
    async with scope(sessionmaker) as session:
        await session.exec(
            update(TicketDelivery).where(col(TicketDelivery.id) == row_id).values(**values)
        )


async def _fence(sessionmaker: Sessions, name: str, *, silent_for: float) -> int | None:
    now = datetime.now(UTC)
    async with scope(sessionmaker) as session:
        return await fencing.fence(
            session,
            backend_name=name,
            silent_since=now - timedelta(seconds=silent_for),
            now=now,
        )


async def test_a_silent_backend_is_fenced_once_per_silence_and_loses_its_unfinished_work(
    outbox: Outbox, stand_in: StandIn, sessionmaker: Sessions
) -> None:
    """New generation; the revision it accepted and did not finish goes back to the queue
    (stage moved, from where); a finished one and an unsent one stay; the same silence is
    never fenced twice, a new one is."""
    backend = stand_in()
    await register(
        sessionmaker, "be-1", backend, heartbeat=True, now=datetime.now(UTC) - timedelta(minutes=5)
    )
    before = await _generation(sessionmaker, "be-1")
    await outbox.add(KEYS[:3])
    unfinished, finished, unsent = [r.id for r in await outbox.rows()]
    for row_id, stage in ((unfinished, "at_backend"), (finished, "completed")):
        await _set(
            sessionmaker,
            row_id,
            backend_name="be-1",
            status="delivered",
            stage=stage,
            generation=before,
        )
    await _set(sessionmaker, unsent, backend_name="be-1")

    assert await _fence(sessionmaker, "be-1", silent_for=60) == 1
    after = await _generation(sessionmaker, "be-1")
    assert after > before
    rows = {r.id: r for r in await outbox.rows()}
    taken = rows[unfinished]
    assert (taken.status, taken.stage, taken.backend_name, taken.moved_from) == (
        "pending",
        "moved",
        None,
        "be-1",
    )
    assert taken.generation is None and taken.moved_at is not None
    assert (rows[finished].status, rows[finished].backend_name) == ("delivered", "be-1")
    assert (rows[unsent].status, rows[unsent].backend_name) == ("pending", "be-1")

    assert await _fence(sessionmaker, "be-1", silent_for=60) is None
    assert await _generation(sessionmaker, "be-1") == after
    # It comes back, then falls silent again: a new silence, a new generation.
    await register(
        sessionmaker, "be-1", backend, heartbeat=True, now=datetime.now(UTC) - timedelta(minutes=4)
    )
    assert await _fence(sessionmaker, "be-1", silent_for=60) == 0
    assert await _generation(sessionmaker, "be-1") > after


async def test_a_heartbeat_that_lands_first_prevents_the_failover(
    stand_in: StandIn, sessionmaker: Sessions
) -> None:
    """The guard is the backend's row: a BE heard from since `silent_since` keeps its
    generation, whatever the pass that decided to fail it over had read."""
    await register(sessionmaker, "be-1", stand_in(), heartbeat=True)
    before = await _generation(sessionmaker, "be-1")
    assert await _fence(sessionmaker, "be-1", silent_for=60) is None
    assert await _generation(sessionmaker, "be-1") == before


async def test_a_backend_registered_by_hand_is_not_fenced(
    stand_in: StandIn, sessionmaker: Sessions
) -> None:
    await register(sessionmaker, "by-hand", stand_in())
    async with scope(sessionmaker) as session:
        backend = await registry.get(session, name="by-hand")
        assert not fencing.is_fenced(backend)
    assert await _fence(sessionmaker, "by-hand", silent_for=0) is None


async def test_a_batch_accepted_under_a_replaced_generation_goes_back_to_the_queue(
    outbox: Outbox, stand_in: StandIn, sessionmaker: Sessions
) -> None:
    """A send that straddles the failover: the BE's copy is of the old generation (it will
    give it up), so the WM must not count the revision as delivered."""
    await register(
        sessionmaker,
        "be-1",
        stand_in(),
        heartbeat=True,
        now=datetime.now(UTC) - timedelta(minutes=5),
    )
    await outbox.add(KEYS[:2])
    async with scope(sessionmaker) as session:
        await session.exec(update(TicketDelivery).values(backend_name="be-1"))
    async with scope(sessionmaker) as session:
        batch = await delivery.claim(
            session,
            backend_name="be-1",
            now=datetime.now(UTC),
            limit=10,
            worker="w",
            lease_seconds=30,
        )
    assert {c.generation for c in batch} == {await _generation(sessionmaker, "be-1")}
    assert await _fence(sessionmaker, "be-1", silent_for=60) == 0  # nothing was delivered yet
    async with scope(sessionmaker) as session:
        await delivery._record(
            session, delivered=batch, failed={}, worker="w", backoff=delivery.Backoff(1, 1)
        )
    rows = await outbox.rows()
    assert [(r.status, r.backend_name, r.moved_from) for r in rows] == [
        ("pending", None, "be-1")
    ] * 2


async def test_a_moved_report_for_a_revision_still_at_that_backend_requeues_it(
    outbox: Outbox, stand_in: StandIn, sessionmaker: Sessions
) -> None:
    await outbox.add(KEYS[:1])
    [row] = await outbox.rows()
    await _set(
        sessionmaker,
        row.id,
        backend_name="be-1",
        status="delivered",
        stage="at_backend",
        generation=5,
    )
    moved = OutcomeReport.model_validate(
        {
            "ticket_id": row.ticket_id,
            "revision": 1,
            "seq": 1,
            "stage": "moved",
            "generation": 5,
            "at": datetime.now(UTC),
        }
    )
    async with scope(sessionmaker) as session:
        result = await reports.apply(session, backend_name="be-1", reports=[moved])
    assert result.applied == 1
    [after] = await outbox.rows()
    assert (after.status, after.stage, after.backend_name, after.moved_from) == (
        "pending",
        "moved",
        None,
        "be-1",
    )


async def test_the_worker_hands_a_silent_backends_unfinished_work_to_the_other(
    outbox: Outbox, stand_in: StandIn, sessionmaker: Sessions, run_worker: RunWorker
) -> None:
    """Delivered to a heartbeating BE that then falls silent: its revisions, accepted but
    never reported finished, reach the other BE; each batch carried the generation."""
    silent, healthy = stand_in(), stand_in()
    await register(sessionmaker, "be-silent", silent, heartbeat=True)
    # It heartbeats until its share is delivered: a single heartbeat raced the short timeout
    # on a loaded machine (the worker's first pass came after it, so nothing was delivered).
    beating = asyncio.create_task(_keep_heartbeating(sessionmaker, "be-silent", silent))
    try:
        await outbox.add(KEYS[:30])
        worker = await run_worker(
            health=registry.Health(
                backend_timeout=timedelta(seconds=2), failover_after=timedelta(seconds=1)
            )
        )
        await outbox.wait_until(all_delivered)
        first = await _generation(sessionmaker, "be-silent")  # while it still heartbeats
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
    assert set(silent.generations) == {first}
    await register(sessionmaker, "be-up", healthy)  # by hand: available while it answers
    worker.wake()
    rows = await outbox.wait_until(
        lambda rows: all_delivered(rows) and {r.backend_name for r in rows} == {"be-up"},
        seconds=30,
    )
    assert {r.moved_from for r in rows} == {"be-silent"}
    assert sorted(healthy.received()) == sorted((key, 1) for key in KEYS[:30])
    assert set(healthy.generations) == {None}  # registered by hand: not fenced
    assert await _generation(sessionmaker, "be-silent") > first


def test_failover_must_wait_for_the_lease_and_the_longest_call() -> None:
    with pytest.raises(ValidationError, match=r"WM_FAILOVER_AFTER_SECONDS .*must exceed"):
        WMSettings(failover_after_seconds=30, backend_lease_seconds=20, backend_max_call_seconds=10)
    settings = WMSettings(
        failover_after_seconds=31, backend_lease_seconds=20, backend_max_call_seconds=10
    )
    assert settings.failover_after_seconds == 31


async def test_the_heartbeat_answer_grants_the_lease_and_a_hand_registration_gets_none(
    wm_database_url: str, tmp_path: Path
) -> None:
    app = create_app(
        wm_settings(
            wm_database_url,
            tmp_path,
            distribution_poll_seconds=60,
            backend_probe_interval_seconds=60,
            backend_lease_seconds=7,
            backend_max_call_seconds=4,
        )
    )
    body = {"url": "http://127.0.0.1:8101", "intake_token": "t0ken"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wm.test") as http:
            beat = (await http.put("/api/v1/backends/be-1", json=body, headers=BACKEND)).json()
            by_hand = (await http.put("/api/v1/backends/be-2", json=body, headers=ADMIN)).json()
            listed = (await http.get("/api/v1/backends/be-1", headers=ADMIN)).json()
    assert beat["lease"] == {
        "generation": beat["generation"],
        "lease_seconds": 7.0,
        "max_call_seconds": 4.0,
    }
    assert beat["fenced"] is True and "lease" not in listed  # GET shows no lease at all
    assert listed["generation"] == beat["generation"]
    assert (by_hand["fenced"], by_hand["generation"], by_hand["lease"]) == (False, None, None)


async def test_a_generation_never_goes_backwards_not_even_after_a_removal(
    stand_in: StandIn, sessionmaker: Sessions
) -> None:
    """Generations come from one sequence: a BE removed and registered again can never
    meet its old revisions' generation again."""
    backend = stand_in()
    await register(sessionmaker, "be-1", backend, heartbeat=True)
    before = await _generation(sessionmaker, "be-1")
    async with scope(sessionmaker) as session:
        health = registry.Health(timedelta(seconds=30), timedelta(seconds=60))
        await registry.delete(session, name="be-1", now=datetime.now(UTC), health=health)
    await register(sessionmaker, "be-1", backend, heartbeat=True)
    assert await _generation(sessionmaker, "be-1") > before
