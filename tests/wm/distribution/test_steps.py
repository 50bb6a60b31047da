"""The distribution's steps on a real database: assignment rules, probes, the claim."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.wm.distribution.conftest import Outbox, StandInBE, register, scope
from wm_service.distribution import assignment, registry
from wm_service.distribution.delivery import claim
from wm_service.distribution.worker import DistributionWorker
from wm_service.models import TicketDelivery

Sessions = async_sessionmaker[AsyncSession]
KEY = "us-service-group:MTY01-CCAP02:N0423"


async def assign(sessionmaker: Sessions, *, keep: list[str], targets: list[str]) -> None:
    async with scope(sessionmaker) as session:
        await assignment.assign_pending(
            session, keep=keep, targets=targets, now=datetime.now(UTC), limit=10_000
        )


async def deliver_everything(sessionmaker: Sessions) -> None:
    """What a BE's 2xx does to the rows: they stay with their backend, delivered."""
    async with scope(sessionmaker) as session:
        await session.exec(update(TicketDelivery).values(status="delivered"))


async def test_a_new_revision_follows_the_backend_holding_the_older_one(
    outbox: Outbox, sessionmaker: Sessions
) -> None:
    """Revision 2 joins revision 1's backend while revision 1 is undelivered, whatever HRW says."""
    await outbox.add([KEY])
    async with scope(sessionmaker) as session:
        await assignment.assign_pending(
            session, keep=["be-old"], targets=["be-old"], now=datetime.now(UTC), limit=10
        )
    await outbox.add([KEY])
    async with scope(sessionmaker) as session:
        await assignment.assign_pending(
            session, keep=["be-old", "be-new"], targets=["be-new"], now=datetime.now(UTC), limit=10
        )
    assert [r.backend_name for r in await outbox.rows()] == ["be-old", "be-old"]


async def test_a_new_revision_follows_a_delivered_one_while_its_backend_is_kept(
    outbox: Outbox, sessionmaker: Sessions
) -> None:
    """Revision 1 delivered to a BE that is silent but not failed over: revision 2 joins it."""
    await outbox.add([KEY])
    await assign(sessionmaker, keep=["be-old"], targets=["be-old"])
    await deliver_everything(sessionmaker)
    await outbox.add([KEY])
    # be-old may still be working on revision 1: a second BE on the key would open a
    # second incident, so revision 2 waits for be-old rather than going to be-new.
    await assign(sessionmaker, keep=["be-old", "be-new"], targets=["be-new"])
    assert [r.backend_name for r in await outbox.rows()] == ["be-old", "be-old"]


async def test_a_key_moves_once_its_backend_is_failed_over(
    outbox: Outbox, sessionmaker: Sessions
) -> None:
    """Revision 1 delivered to a failed-over BE: revision 2 goes to an available one."""
    await outbox.add([KEY])
    await assign(sessionmaker, keep=["be-old"], targets=["be-old"])
    await deliver_everything(sessionmaker)
    await outbox.add([KEY])
    await assign(sessionmaker, keep=["be-new"], targets=["be-new"])
    assert [r.backend_name for r in await outbox.rows()] == ["be-old", "be-new"]


async def test_a_third_backend_takes_about_a_third_of_new_keys_and_no_known_key(
    outbox: Outbox, sessionmaker: Sessions
) -> None:
    """Known keys stay with their backend; keys never seen are spread by HRW over all three."""
    known = [f"{KEY}-known-{i}" for i in range(300)]
    await outbox.add(known)
    await assign(sessionmaker, keep=["a", "b"], targets=["a", "b"])
    await deliver_everything(sessionmaker)
    first = {r.dedup_key: r.backend_name for r in await outbox.rows()}
    new = [f"{KEY}-new-{i}" for i in range(300)]
    await outbox.add(known + new)
    await assign(sessionmaker, keep=["a", "b", "c"], targets=["a", "b", "c"])
    pending = [r for r in await outbox.rows() if r.status == "pending"]
    assert {r.dedup_key: r.backend_name for r in pending if r.dedup_key in first} == first
    to_c = sum(1 for r in pending if r.dedup_key not in first and r.backend_name == "c")
    assert 0.25 * len(new) <= to_c <= 0.42 * len(new)


async def test_failover_keeps_the_rows_of_backends_in_keep(
    outbox: Outbox, sessionmaker: Sessions
) -> None:
    """Only rows of backends outside `keep` move, each to its rendezvous winner."""
    keys = [f"{KEY}-{i}" for i in range(30)]
    await outbox.add(keys)
    async with scope(sessionmaker) as session:
        await assignment.assign_pending(
            session, keep=["a", "b"], targets=["a", "b"], now=datetime.now(UTC), limit=100
        )
    before = {r.dedup_key: r.backend_name for r in await outbox.rows()}
    async with scope(sessionmaker) as session:
        moved = await assignment.fail_over(
            session, keep=["b"], targets=["b", "c"], now=datetime.now(UTC), limit=100
        )
    after = {r.dedup_key: r.backend_name for r in await outbox.rows()}
    assert moved == {"a": sum(1 for name in before.values() if name == "a")}
    for key in keys:
        if before[key] == "b":
            assert after[key] == "b"
        else:
            assert after[key] in {"b", "c"}


async def test_probes_record_ready_and_unready_backends(
    sessionmaker: Sessions,
    stand_in: Callable[..., StandInBE],
    run_worker: Callable[..., Awaitable[DistributionWorker]],
) -> None:
    """A 200 from /readyz sets last_probe_ok_at; a 503 keeps the reason and no success time."""
    ready, unready = stand_in(), stand_in(ready=False)
    await register(sessionmaker, "ready", ready)
    await register(sessionmaker, "unready", unready)
    worker = await run_worker(probe_interval_seconds=60)
    await worker.probe_once()
    async with scope(sessionmaker) as session:
        ok = await registry.get(session, name="ready")
        bad = await registry.get(session, name="unready")
    assert ok.last_probe_ok_at is not None and ok.last_probe_error is None
    assert bad.last_probe_ok_at is None and bad.last_probe_error == "HTTP 503"


async def test_a_full_batch_blocked_behind_a_backoff_does_not_hide_a_sendable_row(
    sessionmaker: Sessions, outbox: Outbox
) -> None:
    """Revisions waiting behind one in backoff are passed over; a free row is claimed."""
    await outbox.add([KEY])
    await outbox.add([KEY, KEY, KEY])
    await outbox.add(["snr-upstream:OTHER"])
    later = datetime.now(UTC) + timedelta(hours=1)
    async with scope(sessionmaker) as session:
        await session.exec(update(TicketDelivery).values(backend_name="be1"))
        await session.exec(
            update(TicketDelivery)
            .where(col(TicketDelivery.dedup_key) == KEY, col(TicketDelivery.revision) == 1)
            .values(next_attempt_at=later)
        )
    async with scope(sessionmaker) as session:
        batch = await claim(
            session,
            backend_name="be1",
            now=datetime.now(UTC),
            limit=3,
            worker="wm:test:be1/0",
            lease_seconds=30,
        )
    assert [c.dedup_key for c in batch] == ["snr-upstream:OTHER"]
