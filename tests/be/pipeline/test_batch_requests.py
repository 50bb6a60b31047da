"""A batch is several requests' worth (worker.REQUESTS_PER_CLAIM): each step sends its
requests at once, within a bound on the calls in flight to each platform; the note, which
must not be repeated, sends them one after another; the fence is consulted once per step
and again when a call leaves."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal
from unittest.mock import patch

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from be_service import main
from be_service.config import BESettings
from be_service.metrics import BEMetrics
from be_service.pipeline import store
from be_service.pipeline.fence import Fence, LeaseGrant
from be_service.pipeline.health import Permit, PlatformHealth
from be_service.pipeline.sender import request_slices
from be_service.pipeline.steps import Item, Outcome, Step
from be_service.pipeline.worker import REQUESTS_PER_CLAIM, work_once
from be_service.platforms.registry import PLATFORMS, build_health
from be_service.schemas import SettingsUpdate
from be_service.services import settings as settings_service
from tests.be.conftest import later, make_ticket
from tests.be.pipeline.conftest import InProcessPipeline
from ticketing_common.db import session_scope


class Overlap:
    """Wraps a step's send to see how many of its calls are in flight at once. Each call
    waits (at most `patience` seconds) until `expect` are: calls sent together all get in,
    calls sent one after another each wait it out alone."""

    def __init__(self, step: Step, *, expect: int, patience: float = 0.3) -> None:
        self.original, self.expect, self.patience = step.send, expect, patience
        self.in_flight = self.peak = self.calls = 0
        self.met = asyncio.Event()
        step.send = self.send  # type: ignore[method-assign]

    async def send(self, items: Sequence[Item], *, request_size: int) -> list[Outcome]:
        self.calls += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.in_flight >= self.expect:
            self.met.set()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.met.wait(), self.patience)
            return await self.original(items, request_size=request_size)
        finally:
            self.in_flight -= 1


async def _requests_of(pipeline: InProcessPipeline, size: int) -> None:
    async for session in session_scope(pipeline.sessionmaker):
        await settings_service.update(session, patch=SettingsUpdate(max_tickets_per_request=size))


async def test_a_batch_takes_several_requests_worth_and_sends_a_steps_requests_at_once(
    pipeline: InProcessPipeline,
):
    """23 tickets, 5 a request: a batch of 20 and one of 3, whose steps send their requests
    together (the first batch's four creates at once); every ticket ends with one incident
    and one work order."""
    assert REQUESTS_PER_CLAIM == 4
    await _requests_of(pipeline, 5)
    tickets = [make_ticket() for _ in range(23)]
    await pipeline.intake(*tickets)
    check = Overlap(pipeline.platforms.step("check"), expect=4, patience=5)
    create = Overlap(pipeline.platforms.step("create"), expect=4, patience=5)

    assert await pipeline.drain() == 2
    assert (check.calls, check.peak) == (create.calls, create.peak) == (5, 4)
    platforms = pipeline.platforms
    assert await platforms.requests("savebusinessobjectbatch") == 2 * 5  # create and link
    incidents = await platforms.records("incident")
    assert len(incidents) == len(await platforms.records("workorder")) == 23
    assert sorted(i["TpcCorrelationKey"] for i in incidents) == sorted(
        t["dedup_key"] for t in tickets
    )


async def test_notes_go_one_request_at_a_time_each_recorded_before_the_next(
    pipeline: InProcessPipeline,
):
    """A note is the one write a crash must not repeat: each request is recorded before the
    next leaves, so a crash between call and record repeats one request's notes at most."""
    await _requests_of(pipeline, 5)
    tickets = [make_ticket() for _ in range(10)]
    await pipeline.intake(*tickets)
    await pipeline.drain()
    note = Overlap(pipeline.platforms.step("note"), expect=2)
    recorded_before: list[int] = []
    send = note.send

    async def counting(items: Sequence[Item], *, request_size: int) -> list[Outcome]:
        async for session in session_scope(pipeline.sessionmaker):
            count = text("SELECT count(*) FROM ticket_attempt WHERE operation = 'note'")
            recorded_before.append((await (await session.connection()).execute(count)).scalar_one())
        return await send(items, request_size=request_size)

    pipeline.platforms.step("note").send = counting  # type: ignore[method-assign]
    await pipeline.intake(*(later(t, 2, "update") for t in tickets))

    assert await pipeline.drain() == 1
    assert (note.calls, note.peak) == (2, 1)
    assert recorded_before == [0, 5]
    assert len(await pipeline.platforms.records("journal")) == 10


async def test_the_calls_in_flight_to_a_platform_stay_within_its_bound(
    pipeline: InProcessPipeline,
):
    await _requests_of(pipeline, 5)
    await pipeline.intake(*(make_ticket() for _ in range(20)))
    create = Overlap(pipeline.platforms.step("create"), expect=4)
    bounded = dataclasses.replace(
        pipeline.context(), platform_calls={"cherwell": asyncio.Semaphore(2)}
    )
    assert await work_once(bounded, worker="test-worker")
    assert (create.calls, create.peak) == (4, 2)
    assert len(await pipeline.platforms.records("incident")) == 20


def _leased_for_ten_seconds(now: list[float]) -> Fence:
    """A fence holding a lease on generation 5 for ten seconds of the clock `now[0]`."""
    fence = Fence(enabled=True, clock=lambda: now[0])
    fence.renew(LeaseGrant(5, 10.0, max_call_seconds=3.0), sent_at=now[0])
    return fence


class WatchedSemaphore(asyncio.Semaphore):
    """Says when somebody first waits for it."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.asked = asyncio.Event()

    async def acquire(self) -> Literal[True]:
        self.asked.set()
        return await super().acquire()


async def test_the_lease_is_never_renewed_while_the_batch_writes_its_revisions(
    pipeline: InProcessPipeline, monkeypatch: pytest.MonkeyPatch
):
    """The renewal and the batch's record update the same revisions, each locking them in its
    own order: run at once, the two transactions can deadlock and Postgres aborts one (seen
    in the suite: a record aborted, its revisions checked again). With the lease renewed
    every 10 ms and each record made to last 100 ms, renewals come between records only."""
    await pipeline.intake(*(make_ticket() for _ in range(3)))
    records: list[tuple[float, float]] = []
    renewals: list[float] = []
    update_revisions, extend_claims = store.update_revisions, store.extend_claims

    async def slow_record(*args: Any, **kwargs: Any) -> None:
        started = time.monotonic()
        await asyncio.sleep(0.1)
        await update_revisions(*args, **kwargs)
        records.append((started, time.monotonic()))

    async def watched_renewal(*args: Any, **kwargs: Any) -> None:
        renewals.append(time.monotonic())
        await extend_claims(*args, **kwargs)

    monkeypatch.setattr(store, "update_revisions", slow_record)
    monkeypatch.setattr(store, "extend_claims", watched_renewal)
    ctx = dataclasses.replace(pipeline.context(), lease_seconds=0.03)
    assert await work_once(ctx, worker="test-worker")
    assert len(records) >= 2 and renewals  # the check's record, then the rest's
    assert [t for t in renewals if any(start < t < end for start, end in records)] == []


async def test_a_call_that_waited_for_its_platform_leaves_only_if_the_lease_still_holds(
    pipeline: InProcessPipeline,
):
    """The lease ends while the batch waits for a call to spare: nothing is sent, and the
    revision waits at its step for the next lease."""
    now = [1000.0]
    pipeline.fence = _leased_for_ten_seconds(now)
    ticket = make_ticket()
    await pipeline.intake(ticket, generation=5)
    calls = WatchedSemaphore(1)
    await calls.acquire()  # every call is taken: the batch has to wait
    calls.asked.clear()
    ctx = dataclasses.replace(pipeline.context(), platform_calls={"cherwell": calls})
    batch = asyncio.create_task(work_once(ctx, worker="test-worker"))
    await asyncio.wait_for(calls.asked.wait(), 5)
    now[0] += 11  # the lease lapses while it waits
    calls.release()
    assert await asyncio.wait_for(batch, 5)
    assert await pipeline.platforms.requests("") == 0
    [revision] = (await pipeline.ticket(ticket["ticket_id"])).revisions
    assert (revision.status, revision.step, revision.attempts) == ("Received", "check", [])


async def test_a_lease_that_lapses_while_the_trial_waits_holds_the_rest_back_at_once(
    pipeline: InProcessPipeline, caplog: pytest.LogCaptureFixture
):
    """Half-open: the trial waits for a call to spare and the lease lapses meanwhile. The
    trial is held and given back; the next permit holds the other revisions back together:
    two warnings and two trials in all, not one of each per revision."""
    now = [1000.0]
    pipeline.fence = _leased_for_ten_seconds(now)
    for _ in range(3):
        await pipeline.intake(make_ticket(), generation=5)
    cherwell = PlatformHealth("cherwell", failure_threshold=1, probe_interval=0.0)
    cherwell.failed("down")
    permits = _noting_permits(cherwell)
    calls = WatchedSemaphore(1)
    await calls.acquire()  # every call is taken: the trial has to wait
    calls.asked.clear()
    ctx = dataclasses.replace(
        pipeline.context(), health={"cherwell": cherwell}, platform_calls={"cherwell": calls}
    )
    with caplog.at_level(logging.WARNING, logger="be_service.pipeline.sender"):
        batch = asyncio.create_task(work_once(ctx, worker="test-worker"))
        await asyncio.wait_for(calls.asked.wait(), 5)
        now[0] += 11  # the lease lapses while the trial waits
        calls.release()
        assert await asyncio.wait_for(batch, 5)
    assert await pipeline.platforms.requests("") == 0
    assert permits == [Permit.probe, Permit.probe]
    held = [r.getMessage() for r in caplog.records if "not sent: no lease" in r.getMessage()]
    assert held == [
        "1 revision(s) not sent: no lease from the WM on their generation",
        "2 revision(s) not sent: no lease from the WM on their generation",
    ]
    assert PlatformHealth.permit(cherwell) is Permit.probe


@pytest.mark.parametrize(
    ("start", "end", "probe", "one_at_a_time", "expected"),
    [
        (0, 23, False, False, [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]),
        (5, 23, False, False, [(5, 10), (10, 15), (15, 20), (20, 23)]),
        (0, 4, False, False, [(0, 4)]),
        (0, 23, False, True, [(0, 5)]),
        (20, 23, False, True, [(20, 23)]),
        (0, 23, True, False, [(0, 1)]),
        (7, 23, True, True, [(7, 8)]),
    ],
)
def test_request_slices(
    start: int, end: int, probe: bool, one_at_a_time: bool, expected: list[tuple[int, int]]
) -> None:
    assert request_slices(start, end, 5, probe=probe, one_at_a_time=one_at_a_time) == expected


async def test_a_trial_the_fence_holds_back_leaves_the_next_trial_to_another_batch(
    pipeline: InProcessPipeline,
):
    """Half-open: the batch holding the trial sends nothing (its lease has lapsed); the trial
    is given up, not kept, or every batch would wait for a trial that never comes."""
    now = [1000.0]
    pipeline.fence = fence = _leased_for_ten_seconds(now)
    await pipeline.intake(make_ticket(), generation=5)
    cherwell = PlatformHealth("cherwell", failure_threshold=1, probe_interval=0.0)
    cherwell.failed("down")
    ctx = dataclasses.replace(pipeline.context(), health={"cherwell": cherwell})

    original_permit = cherwell.permit

    def permit_then_lapse() -> Permit:
        permit = original_permit()
        now[0] += 11  # claimed while the lease held, which lapses as the trial is granted
        return permit

    cherwell.permit = permit_then_lapse  # type: ignore[method-assign]
    assert fence.claimable_generation() == 5
    assert await work_once(ctx, worker="test-worker")
    assert await pipeline.platforms.requests("") == 0
    cherwell.permit = original_permit  # type: ignore[method-assign]
    assert cherwell.permit() is Permit.probe


async def test_the_app_bounds_the_calls_to_each_platform_at_be_workers_max():
    settings = BESettings(
        cherwell_url="http://cherwell.test/CherwellAPI",
        sfyc_url="http://sfyc.test/services",
        workers=2,
        workers_max=3,
    )
    app = FastAPI()
    app.state.sessionmaker = None
    app.state.health = build_health(settings)
    app.state.fence = Fence(enabled=False)
    app.state.metrics = BEMetrics()
    async with httpx.AsyncClient() as http:
        ctx = main._sender_context(settings, app, dict.fromkeys(PLATFORMS, http))
    assert set(ctx.platform_calls) == {"cherwell", "sfyc"}
    for calls in ctx.platform_calls.values():
        for _ in range(3):
            await asyncio.wait_for(calls.acquire(), 1)
        assert calls.locked()


def _noting_permits(health: PlatformHealth) -> list[Permit]:
    """Every permit `health` grants from now on, in order."""
    granted: list[Permit] = []
    original = health.permit

    def permit_and_note() -> Permit:
        granted.append(original())
        return granted[-1]

    health.permit = permit_and_note  # type: ignore[method-assign]
    return granted


async def test_a_trial_that_fails_before_any_answer_is_given_up(pipeline: InProcessPipeline):
    """A bug between the permit and the call must not leave the platform's trial held: no
    batch would ever try the platform again until a restart."""
    await pipeline.intake(make_ticket())
    cherwell = PlatformHealth("cherwell", failure_threshold=1, probe_interval=0.0)
    cherwell.failed("down")
    ctx = dataclasses.replace(pipeline.context(), health={"cherwell": cherwell})

    granted = _noting_permits(cherwell)

    def broken(generation: int | None) -> bool:
        if granted:
            raise RuntimeError("a bug")
        return True

    ctx.fence.allows = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await work_once(ctx, worker="test-worker")
    assert granted == [Permit.probe]
    assert PlatformHealth.permit(cherwell) is Permit.probe


@contextlib.contextmanager
def _lapsing_after_the_claim(now: list[float]) -> Iterator[None]:
    """The lease (of _leased_for_ten_seconds) lapses right after a batch is claimed."""
    claim = store.claim_batch

    async def claim_then_lapse(*args: Any, **kwargs: Any) -> Any:
        claimed = await claim(*args, **kwargs)
        now[0] += 11
        return claimed

    with patch.object(store, "claim_batch", claim_then_lapse):
        yield


async def test_a_lapsed_lease_holds_a_step_back_once_and_gives_its_trial_back(
    pipeline: InProcessPipeline, caplog: pytest.LogCaptureFixture
):
    """The lease lapses before the batch reaches a half-open platform: every revision is
    held back at once, with one warning, and the one trial granted is given back for a
    batch that may send."""
    now = [1000.0]
    pipeline.fence = fence = _leased_for_ten_seconds(now)
    for _ in range(5):
        await pipeline.intake(make_ticket(), generation=5)
    cherwell = PlatformHealth("cherwell", failure_threshold=1, probe_interval=0.0)
    cherwell.failed("down")
    ctx = dataclasses.replace(pipeline.context(), health={"cherwell": cherwell})
    permits = _noting_permits(cherwell)
    assert fence.claimable_generation() == 5
    with (
        caplog.at_level(logging.WARNING, logger="be_service.pipeline.sender"),
        _lapsing_after_the_claim(now),
    ):
        assert await work_once(ctx, worker="test-worker")
    assert await pipeline.platforms.requests("") == 0
    assert permits == [Permit.probe]
    held = [r for r in caplog.records if "not sent: no lease" in r.getMessage()]
    assert [r.getMessage() for r in held] == [
        "5 revision(s) not sent: no lease from the WM on their generation"
    ]
    assert PlatformHealth.permit(cherwell) is Permit.probe


async def test_an_open_circuit_parks_a_step_for_its_wait_even_with_the_lease_lapsed(
    pipeline: InProcessPipeline, caplog: pytest.LogCaptureFixture
):
    """Nothing could be sent either way: the revisions wait for the circuit's next trial
    (not the fence's short wait, taken again every second), and no lease warning is logged."""
    now = [1000.0]
    pipeline.fence = _leased_for_ten_seconds(now)
    await pipeline.intake(make_ticket(), generation=5)
    cherwell = PlatformHealth("cherwell", failure_threshold=1, probe_interval=600.0)
    cherwell.failed("down")
    ctx = dataclasses.replace(pipeline.context(), health={"cherwell": cherwell})
    with (
        caplog.at_level(logging.WARNING, logger="be_service.pipeline.sender"),
        _lapsing_after_the_claim(now),
    ):
        assert await work_once(ctx, worker="test-worker")
    assert not [r for r in caplog.records if "not sent: no lease" in r.getMessage()]
    async for session in session_scope(pipeline.sessionmaker):
        wait = await (await session.connection()).execute(
            text("SELECT extract(epoch FROM claimed_until - now()) FROM ticket_revision")
        )
        assert wait.scalar_one() > 300
