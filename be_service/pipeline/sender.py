"""Sends one claimed batch through every step: check → note | create → work order → link.

Platform calls happen outside database transactions; each step's outcomes are recorded in
their own short transaction before the next step starts, so a crash resumes from there.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service.models import Operation, Step
from be_service.pipeline import store
from be_service.pipeline.store import Claimed, Outcome
from be_service.platforms.cherwell import CherwellClient, NewIncident, SaveResult
from be_service.platforms.http import CallFailure, PlatformError, truncate
from be_service.platforms.sfyc import NewWorkOrder, SfycClient
from ticketing_common.backoff import Backoff
from ticketing_common.db import session_scope

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class SenderContext:
    """What a worker needs to send batches; built once by the app's lifespan."""

    sessionmaker: async_sessionmaker[AsyncSession]
    cherwell: CherwellClient
    sfyc: SfycClient
    backoff: Backoff
    lease_seconds: float
    ambiguous_create_delay_seconds: float


@dataclass(frozen=True)
class BatchLimits:
    """The run-time settings in effect for this batch."""

    max_retries: int
    max_tickets_per_request: int


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _priority_digit(priority: str) -> str:
    return priority[1:] if priority[:1] == "P" and priority[1:].isdigit() else "4"


def _note_text(c: Claimed) -> str:
    return f"[{c.action} r{c.revision}] {c.title}\n{c.description}".strip()


def _item_failed(
    c: Claimed, operation: Operation, at: datetime, response: str | None, error: str | None
) -> Outcome:
    """One item that failed inside a 200 answer (a validation error, a missing read-back)."""
    return Outcome(
        c.id, operation, ok=False, at=at, http_status=200, response=response, error=error
    )


def _external_key(c: Claimed) -> str:
    return f"{c.dedup_key}#{c.platform_id('cherwell', 'public_id')}"


class BatchSender:
    """Runs the steps for one batch; one instance per batch, cheap to build."""

    def __init__(
        self, ctx: SenderContext, *, worker: str, limits: BatchLimits, claimed: list[Claimed]
    ) -> None:
        self.ctx = ctx
        self.worker = worker
        self.limits = limits
        self.claimed = claimed

    async def run(self) -> None:
        """Each step takes the revisions the previous ones left at its step; a failure leaves
        a revision where it was (released with a backoff), so later steps skip it.

        The check is recorded before anything is written: it moves new tickets to the
        create step, so a create whose fate a crash hides is searched for, never resent
        blindly. Notes are recorded right after they are sent, as they are the one write
        that is not idempotent. What follows is recorded once at the end (three
        transactions per batch, not five): a crash before that record only repeats
        idempotent work (search and adopt the incident, upsert the work order by external
        id, set the OT number again).
        """
        live = await self._skip_clears_that_never_reached(self.claimed)
        live = await self._check(live)
        await self._per_chunk(
            [c for c in live if c.step == Step.note], Operation.note, self._note_chunk
        )
        pending: list[Outcome] = []
        for step, operation, call in (
            (Step.create, Operation.create, self._create_chunk),
            (Step.workorder, Operation.workorder, self._work_order_chunk),
            (Step.link, Operation.link, self._link_chunk),
        ):
            items = [c for c in live if c.step == step]
            await self._per_chunk(items, operation, call, deferred=pending)
        await self._record(pending)

    async def _record(self, outcomes: list[Outcome]) -> None:
        async for session in session_scope(self.ctx.sessionmaker):
            errored = await store.record_outcomes(
                session,
                outcomes,
                worker=self.worker,
                max_retries=self.limits.max_retries,
                backoff=self.ctx.backoff,
                lease_seconds=self.ctx.lease_seconds,
            )
        if errored:
            log.warning("%d revision(s) ended in Error", len(errored))

    async def _per_chunk(
        self,
        items: Sequence[Claimed],
        operation: Operation,
        call: Callable[[Sequence[Claimed]], Awaitable[list[Outcome]]],
        *,
        deferred: list[Outcome] | None = None,
    ) -> set[int]:
        """Run `call` per chunk of max_tickets_per_request; record the outcomes now, or add
        them to `deferred` for the caller to record. Returns the revisions that succeeded."""
        succeeded: set[int] = set()
        for chunk in _chunks(items, self.limits.max_tickets_per_request):
            try:
                outcomes = await call(chunk)
            except PlatformError as exc:
                outcomes = self._failed(chunk, operation, exc.failure)
            except Exception as exc:
                # A bug or a platform answer the adapter did not foresee: a failed attempt
                # like any other, so max_retries ends it in Error instead of the batch
                # being abandoned and taken again at every lease, forever.
                log.exception("%s of %d revision(s) failed unexpectedly", operation, len(chunk))
                failure = CallFailure(
                    message=truncate(f"{type(exc).__name__}: {exc}", 300) or "",
                    retryable=True,
                )
                outcomes = self._failed(chunk, operation, failure)
            if deferred is None:
                await self._record(outcomes)
            else:
                deferred.extend(outcomes)
            succeeded.update(o.revision_id for o in outcomes if o.ok)
        return succeeded

    def _failed(
        self, claimed: Sequence[Claimed], operation: Operation, failure: CallFailure
    ) -> list[Outcome]:
        at = _now()
        # A create that failed as a whole (timeout, 5xx, lost answer) may still be being
        # committed by Cherwell: searching for it too early would miss it and create it twice.
        ambiguous = operation is Operation.create and failure.retryable
        return [
            Outcome(
                c.id,
                operation,
                ok=False,
                at=at,
                http_status=failure.http_status,
                response=failure.response,
                error=failure.message,
                retryable=failure.retryable,
                retry_after=failure.retry_after,
                min_delay=self.ctx.ambiguous_create_delay_seconds if ambiguous else 0.0,
            )
            for c in claimed
        ]

    async def _skip_clears_that_never_reached(self, claimed: list[Claimed]) -> list[Claimed]:
        """A clear whose earlier revisions are all here and never created an incident is done."""
        clears = [c for c in claimed if c.action == "clear" and c.step == Step.check]
        if not clears:
            return claimed
        async for session in session_scope(self.ctx.sessionmaker):
            off_platform = await store.tickets_known_off_platform(session, clears)
        done = [c for c in clears if c.ticket_id in off_platform]
        if not done:
            return claimed
        at = _now()
        await self._record(
            [
                Outcome(
                    c.id,
                    Operation.check,
                    ok=True,
                    at=at,
                    response="no earlier revision reached Cherwell: nothing to clear",
                    step=Step.done,
                )
                for c in done
            ]
        )
        done_ids = {c.id for c in done}
        return [c for c in claimed if c.id not in done_ids]

    async def _check(self, claimed: list[Claimed]) -> list[Claimed]:
        """Search open incidents by correlation key; a pending create may have landed already."""
        for c in claimed:
            # Its incident exists (the create succeeded before a later step failed): never
            # search again, as the incident may be resolved by now and a create would
            # duplicate it.
            if c.step == Step.create and c.platform_id("cherwell", "rec_id"):
                c.step = Step.workorder
        to_search = [c for c in claimed if c.step in (Step.check, Step.create)]
        pending = {c.id for c in to_search}
        searched = await self._per_chunk(to_search, Operation.check, self._check_chunk)
        return [c for c in claimed if c.id not in pending or c.id in searched]

    async def _check_chunk(self, chunk: Sequence[Claimed]) -> list[Outcome]:
        found = await self.ctx.cherwell.search_open(
            [c.dedup_key for c in chunk], page_size=self.limits.max_tickets_per_request
        )
        at = _now()
        outcomes = []
        for c in chunk:
            incident = found.get(c.dedup_key)
            ids: dict[str, dict[str, Any]] = {}
            if incident is not None:
                # An incident found while a create is pending is that create's result; any
                # other was open before this revision, which notes it.
                existing = c.step != Step.create
                ids = {"cherwell": {"rec_id": incident.rec_id, "public_id": incident.public_id}}
                if existing:
                    ids["cherwell"]["existing"] = True
                c.ids.update(ids)
                next_step = Step.note if existing else Step.workorder
                response = f"open incident {incident.public_id} found"
            elif c.action == "clear":
                next_step, response = Step.done, "no open incident: nothing to clear"
            else:
                next_step, response = Step.create, "no open incident"
            c.step = next_step
            outcomes.append(
                Outcome(
                    c.id,
                    Operation.check,
                    ok=True,
                    at=at,
                    http_status=200,
                    response=response,
                    step=next_step,
                    ids=ids,
                )
            )
        return outcomes

    async def _note_chunk(self, chunk: Sequence[Claimed]) -> list[Outcome]:
        results = await self.ctx.cherwell.add_notes(
            [(c.platform_id("cherwell", "rec_id") or "", _note_text(c)) for c in chunk]
        )
        return self._save_outcomes(chunk, results, Operation.note, next_step=Step.done)

    async def _create_chunk(self, chunk: Sequence[Claimed]) -> list[Outcome]:
        results = await self.ctx.cherwell.create_incidents(
            [
                NewIncident(
                    correlation_key=c.dedup_key,
                    title=c.title,
                    description=c.description,
                    priority=_priority_digit(c.priority),
                    category=c.category,
                    subcategory=c.kind,
                )
                for c in chunk
            ]
        )
        return self._save_outcomes(chunk, results, Operation.create, next_step=Step.workorder)

    async def _work_order_chunk(self, chunk: Sequence[Claimed]) -> list[Outcome]:
        orders = [
            NewWorkOrder(
                external_key=_external_key(c),
                subject=c.work_order_subject,
                description=c.work_order_description,
                priority=c.priority,
                cherwell_incident=c.platform_id("cherwell", "public_id") or "",
            )
            for c in chunk
        ]
        results = await self.ctx.sfyc.upsert_work_orders(orders)
        at = _now()
        upserted = [c for c, r in zip(chunk, results, strict=True) if r.ok]
        numbers = (
            await self.ctx.sfyc.work_order_numbers([_external_key(c) for c in upserted])
            if upserted
            else {}
        )
        outcomes = []
        for c, result in zip(chunk, results, strict=True):
            if not result.ok:
                outcomes.append(
                    _item_failed(c, Operation.workorder, at, result.response, result.message)
                )
                continue
            record_id, number = numbers.get(_external_key(c), (result.record_id or "", ""))
            if not number:
                outcomes.append(
                    _item_failed(
                        c,
                        Operation.workorder,
                        at,
                        result.response,
                        "work order upserted but its number could not be read back",
                    )
                )
                continue
            ids = {"sfyc": {"id": record_id, "number": number}}
            c.ids.update(ids)
            c.step = Step.link
            outcomes.append(
                Outcome(
                    c.id,
                    Operation.workorder,
                    ok=True,
                    at=at,
                    http_status=200,
                    response=result.response,
                    step=Step.link,
                    ids=ids,
                )
            )
        return outcomes

    async def _link_chunk(self, chunk: Sequence[Claimed]) -> list[Outcome]:
        results = await self.ctx.cherwell.set_work_order_numbers(
            [
                (c.platform_id("cherwell", "rec_id") or "", c.platform_id("sfyc", "number") or "")
                for c in chunk
            ]
        )
        return self._save_outcomes(chunk, results, Operation.link, next_step=Step.done)

    @staticmethod
    def _save_outcomes(
        chunk: Sequence[Claimed],
        results: list[SaveResult],
        operation: Operation,
        *,
        next_step: Step,
    ) -> list[Outcome]:
        at = _now()
        outcomes = []
        for c, result in zip(chunk, results, strict=True):
            if not result.ok:
                outcomes.append(_item_failed(c, operation, at, result.response, result.message))
                continue
            ids: dict[str, dict[str, Any]] = {}
            if operation is Operation.create:
                ids = {"cherwell": {"rec_id": result.rec_id, "public_id": result.public_id}}
                c.ids.update(ids)
            c.step = next_step
            outcomes.append(
                Outcome(
                    c.id,
                    operation,
                    ok=True,
                    at=at,
                    http_status=200,
                    response=result.response,
                    step=next_step,
                    ids=ids,
                )
            )
        return outcomes
