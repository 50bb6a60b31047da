"""Outbox delivery over real HTTP to stand-in BEs: batches, acknowledgement, retry, failover."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.wm.distribution.conftest import (
    KEYS,
    Outbox,
    RunWorker,
    Sessions,
    StandIn,
    StandInBE,
    all_delivered,
    make_config,
    register,
    scope,
)
from wm_service.distribution import assignment, registry, rendezvous
from wm_service.distribution import worker as worker_module
from wm_service.distribution.delivery import BatchResult, Target, deliver_batch

SENDER = "wm:test:be-1/0"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


async def send_one_batch(
    sessionmaker: Sessions, http: httpx.AsyncClient, name: str, backend: StandInBE
) -> BatchResult:
    """Assign every unassigned row to `name` and run one delivery step for it."""
    async with scope(sessionmaker) as session:
        await assignment.assign_pending(
            session, keep=[name], targets=[name], now=datetime.now(UTC), limit=1000
        )
    return await deliver_batch(
        sessionmaker,
        client=http,
        target=Target(name=name, url=backend.url, intake_token=backend.token),
        now=datetime.now(UTC),
        batch_size=100,
        backoff=make_config().backoff,
        worker=SENDER,
    )


async def test_batches_have_the_configured_size(
    outbox: Outbox, stand_in: StandIn, sessionmaker: Sessions, run_worker: RunWorker
) -> None:
    """25 revisions with a batch size of 10 arrive as batches of 10, 10 and 5."""
    backend = stand_in()
    await register(sessionmaker, "be-1", backend)
    await outbox.add(KEYS[:25])
    await run_worker(batch_size=10)
    await outbox.wait_until(all_delivered)
    assert sorted(len(batch) for batch in backend.batches) == [5, 10, 10]
    assert sorted(backend.received()) == sorted((key, 1) for key in KEYS[:25])


async def test_a_2xx_marks_the_batch_delivered(
    outbox: Outbox, stand_in: StandIn, sessionmaker: Sessions, http: httpx.AsyncClient
) -> None:
    """After the BE's 2xx every row of the batch is delivered, to that BE, at one try."""
    backend = stand_in()
    await register(sessionmaker, "be-1", backend)
    await outbox.add(KEYS[:3])
    result = await send_one_batch(sessionmaker, http, "be-1", backend)
    rows = await outbox.rows()
    assert result == BatchResult(sent=3, delivered=True)
    assert [(r.status, r.backend_name, r.attempts) for r in rows] == [("delivered", "be-1", 1)] * 3
    assert all(r.delivered_at is not None for r in rows)


async def test_a_failed_send_leaves_the_rows_pending_with_the_error(
    outbox: Outbox, stand_in: StandIn, sessionmaker: Sessions, http: httpx.AsyncClient
) -> None:
    """A 503 from the BE counts an attempt, keeps the error (never the token) and a retry time."""
    backend = stand_in(fail_next=1, token="s3cret-intake")
    await register(sessionmaker, "be-1", backend)
    await outbox.add(KEYS[:3])
    before = datetime.now(UTC)
    result = await send_one_batch(sessionmaker, http, "be-1", backend)
    rows = await outbox.rows()
    assert result.sent == 3 and not result.delivered
    assert len(backend.batches) == 1
    assert [(r.status, r.attempts, r.delivered_at) for r in rows] == [("pending", 1, None)] * 3
    assert all((r.last_error or "").startswith("HTTP 503") for r in rows)
    assert all("s3cret-intake" not in (r.last_error or "") for r in rows)
    assert all(r.next_attempt_at is not None and r.next_attempt_at > before for r in rows)


async def test_a_rejected_batch_is_halved_until_only_the_bad_revision_is_left(
    outbox: Outbox, stand_in: StandIn, sessionmaker: Sessions, http: httpx.AsyncClient
) -> None:
    """A 422 for a batch: the good revisions are delivered, the bad one keeps its error."""
    bad = KEYS[6]
    backend = stand_in(reject={(bad, 1)})
    await register(sessionmaker, "be-1", backend)
    await outbox.add(KEYS[:10])
    result = await send_one_batch(sessionmaker, http, "be-1", backend)
    rows = {r.dedup_key: r for r in await outbox.rows()}
    assert not result.delivered
    assert sorted(backend.received()) == sorted((key, 1) for key in KEYS[:10] if key != bad)
    assert {k for k, r in rows.items() if r.status == "pending"} == {bad}
    assert (rows[bad].last_error or "").startswith("HTTP 422")
    assert rows[bad].next_attempt_at is not None


async def test_later_revisions_of_a_rejected_key_are_held_back(
    outbox: Outbox, stand_in: StandIn, sessionmaker: Sessions, http: httpx.AsyncClient
) -> None:
    """Revision 2 of a key whose revision 1 the BE refused is not delivered before it."""
    bad = KEYS[1]
    backend = stand_in(reject={(bad, 1)})  # revision 2 alone would be accepted
    await register(sessionmaker, "be-1", backend)
    await outbox.add(KEYS[:4])
    await outbox.add(KEYS[:4])
    await send_one_batch(sessionmaker, http, "be-1", backend)
    pending = [(r.dedup_key, r.revision) for r in await outbox.rows() if r.status == "pending"]
    assert pending == [(bad, 1), (bad, 2)]
    assert (bad, 2) not in backend.received()


async def test_rows_in_backoff_are_not_sent_again_at_once(
    outbox: Outbox, stand_in: StandIn, sessionmaker: Sessions, http: httpx.AsyncClient
) -> None:
    """Right after a failure the next step finds nothing due: the rows wait for their backoff."""
    backend = stand_in(fail_next=1)
    await register(sessionmaker, "be-1", backend)
    await outbox.add(KEYS[:3])
    failed_at = datetime.now(UTC)
    await send_one_batch(sessionmaker, http, "be-1", backend)
    again = await deliver_batch(
        sessionmaker,
        client=http,
        target=Target(name="be-1", url=backend.url, intake_token=backend.token),
        # The failure's time, not the clock's: a slow machine must not outlast the backoff.
        now=failed_at,
        batch_size=100,
        backoff=make_config().backoff,
        worker=SENDER,
    )
    assert again.sent == 0
    assert len(backend.batches) == 1


async def test_the_worker_retries_until_the_be_accepts(
    outbox: Outbox, stand_in: StandIn, sessionmaker: Sessions, run_worker: RunWorker
) -> None:
    """Two failed sends, then a 2xx: everything is delivered, after three tries."""
    backend = stand_in(fail_next=2)
    await register(sessionmaker, "be-1", backend)
    await outbox.add(KEYS[:5])
    await run_worker(concurrency=1)
    rows = await outbox.wait_until(all_delivered)
    assert len(backend.batches) == 3
    assert {r.attempts for r in rows} == {3}
    assert {r.last_error for r in rows} == {None}


async def test_keys_are_split_by_rendezvous_over_two_backends(
    outbox: Outbox, stand_in: StandIn, sessionmaker: Sessions, run_worker: RunWorker
) -> None:
    """Each backend receives exactly the keys rendezvous hashing gives it, and both get some."""
    first, second = stand_in(), stand_in()
    await register(sessionmaker, "be-1", first)
    await register(sessionmaker, "be-2", second)
    await outbox.add(KEYS)
    await run_worker()
    await outbox.wait_until(all_delivered)
    expected = rendezvous.assign(KEYS, ["be-1", "be-2"])
    assert {key for key, _ in first.received()} == {k for k, b in expected.items() if b == "be-1"}
    assert {key for key, _ in second.received()} == {k for k, b in expected.items() if b == "be-2"}
    assert first.received() and second.received()


async def test_failover_moves_a_silent_backends_rows_to_the_other(
    outbox: Outbox, stand_in: StandIn, sessionmaker: Sessions, run_worker: RunWorker
) -> None:
    """A BE down past backend timeout + failover_after loses its rows to the healthy BE."""
    down, healthy = stand_in(down=True), stand_in()
    await register(sessionmaker, "be-down", down)
    await register(sessionmaker, "be-up", healthy)
    await outbox.add(KEYS[:60])
    async with scope(sessionmaker) as session:
        await assignment.assign_pending(
            session,
            keep=["be-down", "be-up"],
            targets=["be-down", "be-up"],
            now=datetime.now(UTC),
            limit=1000,
        )
    share = {r.dedup_key for r in await outbox.rows() if r.backend_name == "be-down"}
    assert share
    await run_worker(
        health=registry.Health(
            backend_timeout=timedelta(seconds=1), failover_after=timedelta(seconds=1)
        )
    )
    rows = await outbox.wait_until(all_delivered)
    assert {r.backend_name for r in rows} == {"be-up"}
    assert sorted(healthy.received()) == sorted((key, 1) for key in KEYS[:60])
    assert down.accepted == []


async def test_an_idle_worker_spaces_its_passes_and_work_brings_the_pace_back(
    monkeypatch: pytest.MonkeyPatch,
    outbox: Outbox,
    stand_in: StandIn,
    sessionmaker: Sessions,
    run_worker: RunWorker,
) -> None:
    """Passes every poll_seconds while there is work; after IDLE_AFTER_SECONDS without a row
    assigned or sent, at least IDLE_POLL_SECONDS apart; a push's wake is served at once."""
    monkeypatch.setattr(worker_module, "IDLE_AFTER_SECONDS", 2.0)
    worker = await run_worker(poll_seconds=0.05)
    assert worker.pause() == 0.05  # just started: not idle yet
    await asyncio.sleep(2.1)
    assert worker.pause() == worker_module.IDLE_POLL_SECONDS
    await register(sessionmaker, "be-1", stand_in())
    await outbox.add(KEYS[:10])
    worker.wake()
    await outbox.wait_until(all_delivered, seconds=10)
    assert worker.pause() == 0.05


async def test_without_any_backend_rows_wait_and_are_delivered_later(
    outbox: Outbox, stand_in: StandIn, sessionmaker: Sessions, run_worker: RunWorker
) -> None:
    """With no BE registered nothing is assigned or dropped; a BE that registers gets it all."""
    await outbox.add(KEYS[:20])
    worker = await run_worker()
    await worker.dispatch_once()
    waiting = await outbox.rows()
    assert [(r.status, r.backend_name) for r in waiting] == [("pending", None)] * 20
    backend = stand_in()
    await register(sessionmaker, "be-late", backend)
    await outbox.wait_until(all_delivered)
    assert sorted(backend.received()) == sorted((key, 1) for key in KEYS[:20])


async def test_revisions_of_a_key_arrive_in_order(
    outbox: Outbox, stand_in: StandIn, sessionmaker: Sessions, run_worker: RunWorker
) -> None:
    """With concurrent small batches and failures, each key's revisions are accepted in order."""
    backend = stand_in(latency=0.01, fail_next=3)
    await register(sessionmaker, "be-1", backend)
    keys = KEYS[:15]
    for _ in range(5):
        await outbox.add(keys)
    await run_worker(batch_size=4, concurrency=4)
    await outbox.wait_until(all_delivered)
    per_key: dict[str, list[int]] = {}
    for key, revision in backend.received():
        per_key.setdefault(key, []).append(revision)
    assert per_key == {key: [1, 2, 3, 4, 5] for key in keys}


async def test_two_workers_on_one_database_never_send_a_row_twice(
    outbox: Outbox, stand_in: StandIn, sessionmaker: Sessions, run_worker: RunWorker
) -> None:
    """Two WM workers draining one outbox send every revision exactly once."""
    backend = stand_in(latency=0.005)
    await register(sessionmaker, "be-1", backend)
    await outbox.add(KEYS)
    await run_worker(batch_size=10, concurrency=3)
    await run_worker(batch_size=10, concurrency=3)
    await outbox.wait_until(all_delivered)
    sent = Counter((t["dedup_key"], t["revision"]) for batch in backend.batches for t in batch)
    assert set(sent) == {(key, 1) for key in KEYS}
    assert set(sent.values()) == {1}
