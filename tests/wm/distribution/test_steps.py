"""The distribution's steps on a real database: assignment rules, probes, backoff."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.wm.distribution.conftest import Outbox, StandInBE, register, scope
from wm_service.distribution import assignment, registry
from wm_service.distribution.delivery import Backoff
from wm_service.distribution.worker import DistributionWorker

Sessions = async_sessionmaker[AsyncSession]
KEY = "us-service-group:MTY01-CCAP02:N0423"


def test_backoff_grows_exponentially_within_its_jitter_band() -> None:
    """The n-th delay lies in [ceiling/2, ceiling] with ceiling = base·2^(n-1)."""
    backoff = Backoff(base_seconds=1, cap_seconds=60)
    rng = random.Random(7)
    for attempts, ceiling in [(1, 1), (2, 2), (3, 4), (5, 16)]:
        delays = [backoff.delay(attempts, rng) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling


def test_backoff_is_capped() -> None:
    """However many failures, no delay exceeds the cap."""
    backoff = Backoff(base_seconds=1, cap_seconds=60)
    assert max(backoff.delay(40, random.Random(1)) for _ in range(200)) <= 60


async def test_a_new_revision_follows_the_backend_holding_the_older_one(
    outbox: Outbox, sessionmaker: Sessions
) -> None:
    """Revision 2 joins revision 1's backend while revision 1 is undelivered, whatever HRW says."""
    await outbox.add([KEY])
    async with scope(sessionmaker) as session:
        await assignment.assign_pending(
            session, targets=["be-old"], now=datetime.now(UTC), limit=10
        )
    await outbox.add([KEY])
    async with scope(sessionmaker) as session:
        await assignment.assign_pending(
            session, targets=["be-new"], now=datetime.now(UTC), limit=10
        )
    assert [r.backend_name for r in await outbox.rows()] == ["be-old", "be-old"]


async def test_failover_keeps_the_rows_of_backends_in_keep(
    outbox: Outbox, sessionmaker: Sessions
) -> None:
    """Only rows of backends outside `keep` move, each to its rendezvous winner."""
    keys = [f"{KEY}-{i}" for i in range(30)]
    await outbox.add(keys)
    async with scope(sessionmaker) as session:
        await assignment.assign_pending(
            session, targets=["a", "b"], now=datetime.now(UTC), limit=100
        )
    before = {r.dedup_key: r.backend_name for r in await outbox.rows()}
    async with scope(sessionmaker) as session:
        moved = await assignment.fail_over(
            session, keep=["b"], targets=["b", "c"], now=datetime.now(UTC), limit=100
        )
    after = {r.dedup_key: r.backend_name for r in await outbox.rows()}
    assert moved == sum(1 for name in before.values() if name == "a")
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
