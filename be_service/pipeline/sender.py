"""Sends one claimed batch down the step list (check → note | create → work order → link).

Platform calls happen outside database transactions. Each step's outcomes move the
revisions in memory (steps.py) and are recorded, with the policy's decisions, in short
transactions: right after each call for steps that must not be repeated (the note), right
after the step for steps later ones rely on (the check), else at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service.metrics import BEMetrics
from be_service.models import DONE, Status
from be_service.pipeline import policy, store
from be_service.pipeline.fence import Fence
from be_service.pipeline.health import CircuitState, Permit, PlatformHealth
from be_service.pipeline.steps import (
    CURRENT_OPERATION,
    CallFailure,
    Cause,
    Item,
    Outcome,
    PlatformError,
    Step,
    check_step_list,
    next_position,
    now,
    truncate,
    with_ids,
)
from be_service.services.settings import BatchLimits
from ticketing_common.backoff import Backoff
from ticketing_common.db import session_scope

log = logging.getLogger(__name__)

# How long a revision the fence holds back waits before it is claimed again: about one
# heartbeat, after which the lease is renewed or its generation known to be past.
FENCE_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class SenderContext:
    """What a worker needs to send batches; built once by the app's lifespan."""

    sessionmaker: async_sessionmaker[AsyncSession]
    steps: tuple[Step, ...]
    backoff: Backoff
    lease_seconds: float
    ambiguous_create_delay_seconds: float
    # Each platform's health and circuit, shared by the process's workers (none: no circuit).
    health: Mapping[str, PlatformHealth] = field(default_factory=dict)
    metrics: BEMetrics = field(default_factory=BEMetrics)
    # Leave an outcome report for the WM when a revision ends (only with BE_WM_URL set).
    report_outcomes: bool = False
    # The WM's lease and generation (fence.py); disabled: every revision may be sent.
    fence: Fence = field(default_factory=lambda: Fence(enabled=False))
    # At most this many calls in flight to each platform, across the process's batches
    # (BE_WORKERS_MAX: a batch sends its requests of a step at once); none: no bound.
    platform_calls: Mapping[str, asyncio.Semaphore] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_step_list(self.steps)


class BatchSender:
    """Runs the step list for one batch; one instance per batch, cheap to build."""

    def __init__(
        self,
        ctx: SenderContext,
        *,
        worker: str,
        limits: BatchLimits,
        items: list[Item],
        writing: asyncio.Lock | None = None,
    ) -> None:
        self.ctx = ctx
        self.worker = worker
        # Held around each write to the batch's revisions, which the lease's renewal also
        # updates: never both at once (ticketing_common/lease.py, keep_lease).
        self.writing = writing or asyncio.Lock()
        self.limits = limits
        self.items = {item.id: item for item in items}  # each revision's state, as it moves
        self.stopped: set[int] = set()  # failed or parked: left where they are this batch
        self.parked: dict[int, float] = {}  # not sent (circuit open): id → seconds to wait
        self.pending: list[Outcome] = []
        self.rules = policy.RetryRules(
            max_retries=limits.max_retries,
            backoff=ctx.backoff,
            lease_seconds=ctx.lease_seconds,
        )

    @property
    def done(self) -> int:
        """Revisions that went through every step they wanted in this batch."""
        return sum(1 for item in self.items.values() if item.step == DONE)

    async def run(self) -> None:
        """Each step, in list order, takes the revisions waiting for it; a success moves a
        revision to the next step that it still wants, a failure leaves it where it was
        (released with a backoff), so later steps skip it.

        The check is recorded before anything is written: it moves new tickets to the
        create step, so a create whose fate a crash hides is searched for, never resent
        blindly. Notes are recorded right after they are sent, as they are the one write
        that is not idempotent. What follows is recorded once at the end (three
        transactions per batch): a crash before that record only repeats idempotent work
        (search and adopt the incident, upsert the work order by external id, set the OT
        number again).
        """
        self._fail_unknown_positions()
        await self._complete_clears_that_never_reached()
        for index, step in enumerate(self.ctx.steps):
            self._pass_over(index)
            await self._run_step(index, step, [i for i in self._live() if step.takes(i)])
        await self._record()
        if self.parked:
            async with self.writing:
                async for session in session_scope(self.ctx.sessionmaker):
                    await store.release(session, self.parked, worker=self.worker)

    async def _run_step(self, index: int, step: Step, waiting: list[Item]) -> None:
        """Send `waiting` in requests of max_tickets_per_request while the step's platform
        lets us: a closed circuit sends them all at once (or one after another, each
        recorded before the next, for a step that is not repeatable), a half-open one a
        single revision (the trial), an open one none (the revisions are parked at this
        step until the next trial)."""
        health = self.ctx.health.get(step.platform)
        sent = 0
        while sent < len(waiting):
            permit = health.permit() if health else Permit.send
            if health is not None and permit is Permit.wait:
                self._park(waiting[sent:], health)
                return
            reported = False
            try:
                # What the fence refuses is held back at once, with one warning, before
                # anything is sliced: asked only per request, a lapsed lease behind a
                # half-open circuit spent the trial, and logged, on every revision. Each
                # call asks again after waiting for its platform (_call).
                allowed = self._within_fence(waiting[sent:])
                if not allowed:
                    return
                waiting = waiting[:sent] + allowed
                slices = request_slices(
                    sent,
                    len(waiting),
                    self.limits.max_tickets_per_request,
                    probe=permit is Permit.probe,
                    one_at_a_time=not step.repeatable,
                )
                sent = slices[-1][1]
                calls = (self._call(step, waiting[a:b]) for a, b in slices)
                for answer in await asyncio.gather(*calls):
                    if answer is None:
                        continue
                    outcomes, failure = answer
                    if health is not None:
                        _report(health, failure)
                        reported = True
                    self._apply(index, outcomes)
            finally:
                if health is not None and permit is Permit.probe and not reported:
                    # Nothing was sent (the fence held the trial back) or the call never
                    # got an answer to report: give the trial up, or no batch would ever
                    # try this platform again.
                    health.probe_abandoned()
            if step.records_each_call:
                await self._record()

    async def _call(
        self, step: Step, chunk: Sequence[Item]
    ) -> tuple[list[Outcome], CallFailure | None] | None:
        """`chunk` sent once its platform has a call to spare; None when the fence held
        every revision of it back."""
        async with self.ctx.platform_calls.get(step.platform) or contextlib.nullcontext():
            # After the wait, not before it: the lease must hold when the call leaves.
            chunk = self._within_fence(chunk)
            return await self._send(step, chunk) if chunk else None

    def _park(self, items: Sequence[Item], health: PlatformHealth) -> None:
        self._hold(items, health.wait_seconds())

    def _hold(self, items: Sequence[Item], wait: float) -> None:
        """Leave `items` unsent at their step this batch, to be taken again after `wait`."""
        for item in items:
            self.parked[item.id] = wait
            self.stopped.add(item.id)

    def _within_fence(self, chunk: Sequence[Item]) -> list[Item]:
        """The revisions of `chunk` this BE may send now; the others wait, unsent, for a
        lease (this BE cannot reach the WM) or are given up once their generation is past."""
        fence = self.ctx.fence
        # One question per revision: the lease can lapse between two.
        allowed: list[Item] = []
        held: list[Item] = []
        for item in chunk:
            (allowed if fence.allows(item.generation) else held).append(item)
        if held:
            self._hold(held, FENCE_WAIT_SECONDS)
            log.warning(
                "%d revision(s) not sent: no lease from the WM on their generation",
                len(held),
                extra={"generation": fence.generation},
            )
        return allowed

    def _live(self) -> list[Item]:
        return [i for i in self.items.values() if i.id not in self.stopped and i.step != DONE]

    def _apply(self, index: int, outcomes: list[Outcome]) -> None:
        """Move each revision by its outcome: the one way its state changes in a batch."""
        for outcome in outcomes:
            item = self.items[outcome.revision_id]
            if outcome.ok:
                item = with_ids(item, outcome.ids)
                step = next_position(self.ctx.steps, index, item)
                self.items[item.id] = msgspec.structs.replace(item, step=step)
            else:
                self.stopped.add(item.id)
        self.pending.extend(outcomes)

    def _pass_over(self, index: int) -> None:
        """Revisions waiting for a step they no longer want go on to the next one they do
        (an incident that exists already needs no create)."""
        step = self.ctx.steps[index]
        for item in [i for i in self._live() if i.step == step.name and not step.wants(i)]:
            moved = msgspec.structs.replace(item, step=next_position(self.ctx.steps, index, item))
            self.items[item.id] = moved
            if moved.step == DONE:
                # Completed by an attempt row that says why, like every other completion.
                self.pending.append(
                    Outcome(item.id, step.name, ok=True, at=now(), response="not needed")
                )

    def _fail_unknown_positions(self) -> None:
        """A revision waiting for a step this BE does not run (a platform removed from the
        list) ends in Error for an operator to see, instead of being claimed forever."""
        names = {s.name for s in self.ctx.steps}
        unknown = [i for i in self._live() if i.step not in names]
        failure = CallFailure(
            message="this BE's step list has no such step", retryable=False, cause=Cause.ticket
        )
        for item in unknown:
            self._apply(0, self._failed(item.step, [item], failure))

    async def _complete_clears_that_never_reached(self) -> None:
        """A clear whose earlier revisions are all here and never reached a platform needs
        no call: it goes on past the first step as if the check had found nothing."""
        first = self.ctx.steps[0]
        clears = [i for i in self._live() if i.action == "clear" and i.step == first.name]
        if not clears:
            return
        writes = [s.name for s in self.ctx.steps if s.may_write_unanswered]
        async for session in session_scope(self.ctx.sessionmaker):
            off_platform = await store.tickets_known_off_platform(session, clears, writes=writes)
        response = "no earlier revision reached a platform: nothing to clear"
        self._apply(
            0,
            [
                Outcome(i.id, first.name, ok=True, at=now(), response=response)
                for i in clears
                if i.ticket_id in off_platform
            ],
        )
        await self._record()

    async def _send(
        self, step: Step, chunk: Sequence[Item]
    ) -> tuple[list[Outcome], CallFailure | None]:
        """The step's outcomes for `chunk`, and the failure of the call as a whole if any
        (it fails every item); a call that got answers, even refusals, returns None."""
        self.ctx.metrics.batch_size.labels(step.name).observe(len(chunk))
        token = CURRENT_OPERATION.set(step.name)
        call_timeout = self.ctx.fence.call_timeout()
        try:
            async with asyncio.timeout(call_timeout):
                outcomes = await step.send(chunk, request_size=self.limits.max_tickets_per_request)
        except PlatformError as exc:
            failure = exc.failure
            return self._failed(step.name, chunk, failure, step.may_write_unanswered), failure
        except TimeoutError:
            # Cut at the bound the fencing relies on: the WM fails this BE over only after
            # its lease plus one call of at most this long. No answer: it may have written.
            failure = CallFailure(
                message=f"{step.name} took longer than the {call_timeout:g} s a call may take",
                retryable=True,
            )
            return self._failed(step.name, chunk, failure, step.may_write_unanswered), failure
        except Exception as exc:
            # A bug or a platform answer the adapter did not foresee: a failed attempt like
            # any other, so max_retries ends it in Error instead of the batch being abandoned
            # and taken again at every lease, forever.
            log.exception(
                "%s of %d revision(s) failed unexpectedly",
                step.name,
                len(chunk),
                extra={"operation": step.name},
            )
            message = truncate(f"{type(exc).__name__}: {exc}", 300) or ""
            failure = CallFailure(message=message, retryable=True, cause=Cause.ticket)
            return self._failed(step.name, chunk, failure, step.may_write_unanswered), None
        finally:
            CURRENT_OPERATION.reset(token)
        answered = {o.revision_id for o in outcomes}
        missing = [i for i in chunk if i.id not in answered]
        failure = CallFailure(
            message=f"{step.name} gave no outcome for it", retryable=True, cause=Cause.ticket
        )
        return outcomes + self._failed(step.name, missing, failure), None

    def _failed(
        self,
        operation: str,
        items: Sequence[Item],
        failure: CallFailure,
        may_have_written: bool = False,
    ) -> list[Outcome]:
        at = now()
        # A write that failed as a whole with no definite answer (timeout, lost answer) may
        # still be being committed by the platform: searching for it too early would miss it
        # and write twice. A refusal (503, 429) wrote nothing and is retried at once.
        settle = self.ctx.ambiguous_create_delay_seconds
        ambiguous = may_have_written and failure.retryable and failure.may_have_applied
        min_delay = settle if ambiguous else 0.0
        return [
            Outcome(
                i.id,
                operation,
                ok=False,
                at=at,
                http_status=failure.http_status,
                response=failure.response,
                error=failure.message,
                cause=failure.cause,
                retryable=failure.retryable,
                retry_after=failure.retry_after,
                min_delay=min_delay,
            )
            for i in items
        ]

    async def _record(self) -> None:
        """Store the pending outcomes as attempts and move their revisions as the policy says."""
        outcomes, self.pending = self.pending, []
        if not outcomes:
            return
        async with self.writing:
            async for session in session_scope(self.ctx.sessionmaker):
                failures = await store.insert_attempts(session, outcomes)
                updates = policy.plan(outcomes, self.items, failures, self.rules)
                await store.update_revisions(
                    session, updates, worker=self.worker, report=self.ctx.report_outcomes
                )
        self._observe(outcomes, updates)

    def _observe(
        self, outcomes: Sequence[Outcome], updates: Sequence[policy.RevisionUpdate]
    ) -> None:
        """Count the attempts by outcome, and log each revision that ended in Error with why."""
        errored = {u.id for u in updates if u.transition.status is Status.error}
        last = {o.revision_id: o for o in outcomes}
        # Counted first, then added once per series: a batch has four outcomes per revision,
        # and a labelled increment costs 2.4 us.
        counts: Counter[tuple[str, str]] = Counter()
        for outcome in outcomes:
            if outcome.ok:
                label = "ok"
            elif outcome.revision_id in errored and last[outcome.revision_id] is outcome:
                label = "error"
            else:
                label = "wait" if outcome.cause is Cause.platform else "retry"
            counts[outcome.operation, label] += 1
        for (operation, label), count in counts.items():
            self.ctx.metrics.attempts.labels(operation, label).inc(count)
        for revision_id in errored:
            item, outcome = self.items[revision_id], last[revision_id]
            self.ctx.metrics.errored.labels(outcome.operation).inc()
            log.warning(
                "revision ended in Error: %s failed: %s",
                outcome.operation,
                outcome.error,
                extra={
                    "ticket_id": str(item.ticket_id),
                    "revision": item.revision,
                    "dedup_key": item.dedup_key,
                    "operation": outcome.operation,
                    "reason": outcome.error,
                },
            )


def request_slices(
    start: int, end: int, size: int, *, probe: bool, one_at_a_time: bool
) -> list[tuple[int, int]]:
    """The [a, b) ranges of the revisions start..end to send now, a request each: the trial's
    single revision, the next request only, or every request left, at most `size` each."""
    if probe:
        return [(start, start + 1)]
    if one_at_a_time:
        return [(start, min(start + size, end))]
    return [(a, min(a + size, end)) for a in range(start, end, size)]


def _report(health: PlatformHealth, failure: CallFailure | None) -> None:
    """Tell the platform's circuit how the call went: an answer (even a refusal about the
    ticket) means the platform is up; a failure of its own counts towards opening."""
    before = health.state
    if failure is not None and failure.cause is Cause.platform:
        health.failed(failure.message, retry_after=failure.retry_after)
    else:
        health.succeeded()
    if health.state is not before and CircuitState.half_open not in (before, health.state):
        level = logging.WARNING if health.state is CircuitState.open else logging.INFO
        log.log(
            level,
            "%s circuit %s",
            health.platform,
            health.state.value,
            extra={"platform": health.platform, "reason": health.last_failure},
        )
