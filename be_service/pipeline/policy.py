"""Retry vs Error, and each revision's next state, decided from a batch's outcomes.

Pure: the sender hands in the outcomes, the revisions' state after them and the failures the
store has recorded; the store writes what comes out. The one place retry policy lives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

from be_service.models import DONE, Status
from be_service.pipeline.steps import Cause, Item, Outcome, PlatformIds
from ticketing_common.backoff import Backoff


@dataclass(frozen=True)
class RetryRules:
    max_retries: int
    backoff: Backoff
    lease_seconds: float


class Transition(msgspec.Struct, frozen=True):
    status: Status
    keep_claim: bool  # the worker goes on with the revision's next step in this batch
    delay: float | None  # seconds until it may be claimed again; None: no lease at all
    error: str | None


class FailureCount(msgspec.Struct, frozen=True):
    """Failed attempts of one operation of one revision in its current round, by cause."""

    ticket: int = 0
    platform: int = 0


def decide(
    last: Outcome, *, position: str, failures: FailureCount, rules: RetryRules
) -> Transition:
    """A revision's move after its last outcome in a record.

    `position` is its step after the outcomes (DONE: nothing left); `failures` counts the
    failed attempts of that outcome's operation in the current round, this one included.
    A failure about the platform (an outage, a limit) never spends retries: it waits a
    backoff over its platform failures and is tried again, however long the outage lasts.
    A failure about the ticket is retried after a backoff (at least the platform's
    Retry-After and the outcome's own least delay) until the operation has failed that way
    `max_retries` + 1 times, or ends in Error at once when it may not be retried.
    """
    if last.ok:
        if position == DONE:
            return Transition(Status.completed, keep_claim=False, delay=None, error=None)
        return Transition(Status.received, keep_claim=True, delay=rules.lease_seconds, error=None)
    if last.cause is Cause.platform:
        count = max(failures.platform, 1)
    elif not last.retryable or failures.ticket > rules.max_retries:
        return Transition(Status.error, keep_claim=False, delay=None, error=last.error)
    else:
        count = failures.ticket
    wait = rules.backoff.delay(count, retry_after=last.retry_after)
    return Transition(
        Status.received, keep_claim=False, delay=max(wait, last.min_delay), error=last.error
    )


class RevisionUpdate(msgspec.Struct, frozen=True):
    """What the store writes on one revision's row."""

    id: int
    step: str
    ids: PlatformIds
    transition: Transition


def plan(
    outcomes: Sequence[Outcome],
    items: Mapping[int, Item],
    failures: Mapping[tuple[int, str], FailureCount],
    rules: RetryRules,
) -> list[RevisionUpdate]:
    """One update per revision with outcomes: its state now, moved by its last outcome.

    Several outcomes of one revision (create, work order, link) fold into one update; a
    failure never moves the step back (the items hold the step the successes reached).
    """
    last = {o.revision_id: o for o in outcomes}
    updates = []
    for revision_id, outcome in last.items():
        item = items[revision_id]
        failed = failures.get((revision_id, outcome.operation), FailureCount())
        transition = decide(outcome, position=item.step, failures=failed, rules=rules)
        updates.append(RevisionUpdate(revision_id, item.step, item.ids, transition))
    return updates
