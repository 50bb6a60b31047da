"""The outbox lease: no transaction across the POST, renewal, a crashed sender, fencing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.wm.distribution.conftest import Outbox, StandInBE, make_config, register, scope
from wm_service.distribution import assignment
from wm_service.distribution.delivery import BatchResult, Claimed, Target, claim, deliver_batch
from wm_service.models import TicketDelivery

Sessions = async_sessionmaker[AsyncSession]
KEYS = [f"snr-upstream:MTY01-CCAP02:US-{i}/0/1" for i in range(5)]


async def assign_to(sessionmaker: Sessions, name: str) -> None:
    async with scope(sessionmaker) as session:
        await assignment.assign_pending(
            session, keep=[name], targets=[name], now=datetime.now(UTC), limit=100
        )


async def claim_now(sessionmaker: Sessions, worker: str, *, lease_seconds: float) -> list[Claimed]:
    """One claim transaction of `worker`, committed, as a sender makes it."""
    async with scope(sessionmaker) as session:
        return await claim(
            session,
            backend_name="be-1",
            now=datetime.now(UTC),
            limit=100,
            worker=worker,
            lease_seconds=lease_seconds,
        )


def leased(rows: list[TicketDelivery]) -> bool:
    return bool(rows) and all(r.claimed_by == "wm:a" for r in rows)


async def sending(
    outbox: Outbox,
    stand_in: Callable[..., StandInBE],
    sessionmaker: Sessions,
    *,
    latency: float,
    lease_seconds: float,
) -> tuple[StandInBE, asyncio.Task[BatchResult]]:
    """Five revisions for `be-1` (a stand-in answering after `latency`), and one delivery step
    of sender `wm:a` running in the background, returned once its lease is committed."""
    backend = stand_in(latency=latency)
    await register(sessionmaker, "be-1", backend)
    await outbox.add(KEYS)
    await assign_to(sessionmaker, "be-1")

    async def step() -> BatchResult:
        async with httpx.AsyncClient(timeout=10) as http:
            return await deliver_batch(
                sessionmaker,
                client=http,
                target=Target(name="be-1", url=backend.url, intake_token=backend.token),
                now=datetime.now(UTC),
                batch_size=100,
                backoff=make_config().backoff,
                worker="wm:a",
                lease_seconds=lease_seconds,
            )

    task = asyncio.create_task(step())
    await outbox.wait_until(leased)  # visible to other sessions: the claim is committed
    return backend, task


async def test_no_connection_is_held_while_the_batch_is_posted(
    outbox: Outbox, stand_in: Callable[..., StandInBE], sessionmaker: Sessions
) -> None:
    """During a slow POST the lease is committed and the sender holds no database connection."""
    _, step = await sending(outbox, stand_in, sessionmaker, latency=1.0, lease_seconds=30)
    engine = sessionmaker.kw["bind"]
    assert engine.pool.checkedout() == 0
    assert await claim_now(sessionmaker, "wm:b", lease_seconds=30) == []
    assert await step == BatchResult(sent=5, delivered=True)
    rows = await outbox.rows()
    assert [(r.status, r.claimed_by, r.claimed_until) for r in rows] == [
        ("delivered", None, None)
    ] * 5


async def test_the_lease_is_renewed_while_a_post_outlasts_it(
    outbox: Outbox, stand_in: Callable[..., StandInBE], sessionmaker: Sessions
) -> None:
    """A POST longer than two leases: no other sender takes the rows meanwhile. (Renewed every
    third of the lease: the margins let a loaded machine stall the sender for over a second.)"""
    backend, step = await sending(outbox, stand_in, sessionmaker, latency=5.0, lease_seconds=2.0)
    await asyncio.sleep(3.0)
    assert await claim_now(sessionmaker, "wm:b", lease_seconds=30) == []
    assert (await step).delivered
    assert len(backend.batches) == 1
    assert {r.attempts for r in await outbox.rows()} == {1}


async def test_a_crashed_senders_rows_are_taken_again_once_its_lease_lapses(
    outbox: Outbox, sessionmaker: Sessions
) -> None:
    """A sender that claimed and died blocks its rows only until its lease ends."""
    await outbox.add(KEYS)
    await assign_to(sessionmaker, "be-1")
    assert len(await claim_now(sessionmaker, "wm:dead", lease_seconds=3)) == 5
    assert await claim_now(sessionmaker, "wm:b", lease_seconds=30) == []
    await asyncio.sleep(3.1)
    assert len(await claim_now(sessionmaker, "wm:b", lease_seconds=30)) == 5


async def test_a_newer_revision_waits_while_an_older_one_is_being_sent(
    outbox: Outbox, sessionmaker: Sessions
) -> None:
    """Revision 2 of a key whose revision 1 is leased is passed over; other keys are claimed."""
    await outbox.add(KEYS[:1])
    await assign_to(sessionmaker, "be-1")
    assert len(await claim_now(sessionmaker, "wm:a", lease_seconds=30)) == 1
    await outbox.add(KEYS[:2])
    await assign_to(sessionmaker, "be-1")
    taken = await claim_now(sessionmaker, "wm:b", lease_seconds=30)
    assert [(c.dedup_key, json.loads(c.payload)["revision"]) for c in taken] == [(KEYS[1], 1)]


async def test_failover_leaves_rows_being_sent_and_moves_them_once_released(
    outbox: Outbox, sessionmaker: Sessions
) -> None:
    """Leased rows stay with their backend during a failover; lapsed ones move, lease and all."""
    await outbox.add(KEYS)
    await assign_to(sessionmaker, "be-1")
    await claim_now(sessionmaker, "wm:a", lease_seconds=3)

    async def fail_over() -> int:
        async with scope(sessionmaker) as session:
            moved = await assignment.fail_over(
                session, keep=[], targets=["be-2"], now=datetime.now(UTC), limit=100
            )
            return sum(moved.values())

    assert await fail_over() == 0
    await asyncio.sleep(3.1)
    assert await fail_over() == 5
    rows = await outbox.rows()
    assert [(r.backend_name, r.claimed_by) for r in rows] == [("be-2", None)] * 5


async def test_a_sender_stopped_mid_post_hands_its_rows_back(
    outbox: Outbox, stand_in: Callable[..., StandInBE], sessionmaker: Sessions
) -> None:
    """Cancelling a send (the WM stopping) ends the lease at once: the rows are claimable."""
    _, step = await sending(outbox, stand_in, sessionmaker, latency=5.0, lease_seconds=30)
    step.cancel()
    await asyncio.gather(step, return_exceptions=True)
    rows = await outbox.rows()
    assert [(r.status, r.claimed_by, r.attempts) for r in rows] == [("pending", None, 0)] * 5
    assert len(await claim_now(sessionmaker, "wm:b", lease_seconds=30)) == 5
