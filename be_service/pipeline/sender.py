"""Sends one claimed batch down the step list (check → note | create → work order → link).

Platform calls happen outside database transactions. Each step's outcomes move the
revisions in memory (steps.py) and are recorded, with the policy's decisions, in short
transactions: right after the call for steps that must not be repeated, else at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service.models import DONE, Status
from be_service.pipeline import policy, store
from be_service.pipeline.steps import (
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
from ticketing_common.backoff import Backoff
from ticketing_common.db import session_scope

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class SenderContext:
    """What a worker needs to send batches; built once by the app's lifespan."""

    sessionmaker: async_sessionmaker[AsyncSession]
    steps: tuple[Step, ...]
    backoff: Backoff
    lease_seconds: float
    ambiguous_create_delay_seconds: float

    def __post_init__(self) -> None:
        check_step_list(self.steps)


@dataclass(frozen=True)
class BatchLimits:
    """The run-time settings in effect for this batch."""

    max_retries: int
    max_tickets_per_request: int


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class BatchSender:
    """Runs the step list for one batch; one instance per batch, cheap to build."""

    def __init__(
        self, ctx: SenderContext, *, worker: str, limits: BatchLimits, items: list[Item]
    ) -> None:
        self.ctx = ctx
        self.worker = worker
        self.limits = limits
        self.items = {item.id: item for item in items}  # each revision's state, as it moves
        self.failed: set[int] = set()
        self.pending: list[Outcome] = []
        self.rules = policy.RetryRules(
            max_retries=limits.max_retries,
            backoff=ctx.backoff,
            lease_seconds=ctx.lease_seconds,
        )

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
            batch = [i for i in self._live() if step.takes(i)]
            for chunk in _chunks(batch, self.limits.max_tickets_per_request):
                self._apply(index, await self._send(step, chunk))
                if step.record_at_once:
                    await self._record()
        await self._record()

    def _live(self) -> list[Item]:
        return [i for i in self.items.values() if i.id not in self.failed and i.step != DONE]

    def _apply(self, index: int, outcomes: list[Outcome]) -> None:
        """Move each revision by its outcome: the one way its state changes in a batch."""
        for outcome in outcomes:
            item = self.items[outcome.revision_id]
            if outcome.ok:
                item = with_ids(item, outcome.ids)
                self.items[item.id] = replace(item, step=next_position(self.ctx.steps, index, item))
            else:
                self.failed.add(item.id)
        self.pending.extend(outcomes)

    def _pass_over(self, index: int) -> None:
        """Revisions waiting for a step they no longer want go on to the next one they do
        (an incident that exists already needs no create)."""
        step = self.ctx.steps[index]
        for item in [i for i in self._live() if i.step == step.name and not step.wants(i)]:
            moved = replace(item, step=next_position(self.ctx.steps, index, item))
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
        failure = CallFailure(message="this BE's step list has no such step", retryable=False)
        for item in unknown:
            self._apply(0, self._failed(item.step, [item], failure, Cause.ticket))

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

    async def _send(self, step: Step, chunk: Sequence[Item]) -> list[Outcome]:
        """The step's outcomes for `chunk`; a call that failed as a whole fails every item."""
        try:
            outcomes = await step.send(chunk, batch_size=self.limits.max_tickets_per_request)
        except PlatformError as exc:
            cause = Cause.platform if exc.failure.retryable else Cause.ticket
            return self._failed(step.name, chunk, exc.failure, cause, step.may_write_unanswered)
        except Exception as exc:
            # A bug or a platform answer the adapter did not foresee: a failed attempt like
            # any other, so max_retries ends it in Error instead of the batch being abandoned
            # and taken again at every lease, forever.
            log.exception("%s of %d revision(s) failed unexpectedly", step.name, len(chunk))
            message = truncate(f"{type(exc).__name__}: {exc}", 300) or ""
            failure = CallFailure(message=message, retryable=True)
            return self._failed(step.name, chunk, failure, Cause.ticket, step.may_write_unanswered)
        answered = {o.revision_id for o in outcomes}
        missing = [i for i in chunk if i.id not in answered]
        failure = CallFailure(message=f"{step.name} gave no outcome for it", retryable=True)
        return outcomes + self._failed(step.name, missing, failure, Cause.ticket)

    def _failed(
        self,
        operation: str,
        items: Sequence[Item],
        failure: CallFailure,
        cause: Cause,
        may_have_written: bool = False,
    ) -> list[Outcome]:
        at = now()
        # A write that failed as a whole (timeout, 5xx, lost answer) may still be being
        # committed by the platform: searching for it too early would miss it and write twice.
        settle = self.ctx.ambiguous_create_delay_seconds
        min_delay = settle if may_have_written and failure.retryable else 0.0
        return [
            Outcome(
                i.id,
                operation,
                ok=False,
                at=at,
                http_status=failure.http_status,
                response=failure.response,
                error=failure.message,
                cause=cause,
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
        async for session in session_scope(self.ctx.sessionmaker):
            failures = await store.insert_attempts(session, outcomes)
            updates = policy.plan(outcomes, self.items, failures, self.rules)
            await store.update_revisions(session, updates, worker=self.worker)
        errored = [u.id for u in updates if u.transition.status is Status.error]
        if errored:
            log.warning("%d revision(s) ended in Error", len(errored))
