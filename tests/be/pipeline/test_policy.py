"""The retry policy as a table: each row one outcome and what the revision does next."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import pytest

from be_service.models import DONE, Status
from be_service.pipeline.policy import FailureCount, RetryRules, Transition, decide, plan
from be_service.pipeline.steps import CallFailure, Cause, Item, Outcome
from ticketing_common.backoff import Backoff

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
# No jitter (cap 0), so a row's delay is exact: Retry-After (capped at 60) or the least delay.
RULES = RetryRules(
    max_retries=2,
    backoff=Backoff(base_seconds=0, cap_seconds=0, retry_after_cap_seconds=60),
    lease_seconds=30,
)


def _outcome(ok: bool = False, **fields) -> Outcome:
    return Outcome(1, "create", ok=ok, at=AT, error=None if ok else "HTTP 503", **fields)


RECEIVED, COMPLETED, ERROR = Status.received, Status.completed, Status.error


@pytest.mark.parametrize(
    ("case", "outcome", "position", "failures", "expected"),
    [
        ("success, nothing left", _outcome(True), DONE, 0, (COMPLETED, False, None, None)),
        ("success, more steps", _outcome(True), "workorder", 0, (RECEIVED, True, 30, None)),
        ("first failure", _outcome(), "create", 1, (RECEIVED, False, 0, "HTTP 503")),
        ("last retry allowed", _outcome(), "create", 3 - 1, (RECEIVED, False, 0, "HTTP 503")),
        ("max_retries + 1 failures", _outcome(), "create", 3, (ERROR, False, None, "HTTP 503")),
        (
            "not retryable: Error at once",
            _outcome(retryable=False),
            "check",
            1,
            (ERROR, False, None, "HTTP 503"),
        ),
        (
            "Retry-After is honoured",
            _outcome(retry_after=7),
            "create",
            1,
            (RECEIVED, False, 7, "HTTP 503"),
        ),
        (
            "Retry-After is capped",
            _outcome(retry_after=600),
            "create",
            1,
            (RECEIVED, False, 60, "HTTP 503"),
        ),
        (
            "an ambiguous create waits its least delay",
            _outcome(min_delay=30, retry_after=7),
            "create",
            1,
            (RECEIVED, False, 30, "HTTP 503"),
        ),
    ],
)
def test_decide(case, outcome, position, failures, expected):
    """One row per case: status, whether the claim is kept, the delay and the error kept."""
    count = FailureCount(ticket=failures)
    assert decide(outcome, position=position, failures=count, rules=RULES) == Transition(*expected)


@pytest.mark.parametrize(
    ("case", "outcome", "failures", "expected"),
    [
        (
            "an outage never ends in Error, however long",
            _outcome(cause=Cause.platform),
            FailureCount(ticket=0, platform=500),
            (RECEIVED, False, 0, "HTTP 503"),
        ),
        (
            "an outage does not spend the ticket's retries",
            _outcome(cause=Cause.platform),
            FailureCount(ticket=2, platform=1),
            (RECEIVED, False, 0, "HTTP 503"),
        ),
        (
            "a platform's Retry-After is honoured",
            _outcome(retry_after=9, cause=Cause.platform),
            FailureCount(platform=1),
            (RECEIVED, False, 9, "HTTP 503"),
        ),
        (
            "a failure about the ticket after an outage counts only its own kind",
            _outcome(),
            FailureCount(ticket=3, platform=40),
            (ERROR, False, None, "HTTP 503"),
        ),
    ],
)
def test_decide_by_cause(case, outcome, failures, expected):
    """Platform-wide failures wait and retry; only failures about the ticket reach Error."""
    assert decide(outcome, position="create", failures=failures, rules=RULES) == Transition(
        *expected
    )


def test_a_retry_waits_a_full_jitter_backoff():
    """With jitter, the n-th failure waits uniformly up to base·2^(n-1), under the cap."""
    rules = RetryRules(max_retries=9, backoff=Backoff(1, 8), lease_seconds=30)
    random.seed(7)
    four = FailureCount(ticket=4)
    delays = [decide(_outcome(), position="c", failures=four, rules=rules).delay for _ in range(99)]
    assert all(0 <= d <= 8 for d in delays if d is not None)
    assert max(d for d in delays if d is not None) > 4


def _item(step: str) -> Item:
    return Item(
        1, uuid.uuid4(), 1, "open", step, "k", "P2", "snr-upstream", "SNR", "t", "d", "s", "d"
    )


def test_plan_folds_a_revisions_outcomes_and_keeps_the_step_reached():
    """create ok then work order failed: one update, at the work order, released to retry."""
    outcomes = [_outcome(True), Outcome(1, "workorder", ok=False, at=AT, error="HTTP 503")]
    failures = {(1, "workorder"): FailureCount(ticket=1)}
    [update] = plan(outcomes, {1: _item("workorder")}, failures, RULES)
    assert (update.step, update.transition.status, update.transition.keep_claim) == (
        "workorder",
        Status.received,
        False,
    )


@pytest.mark.parametrize(
    ("status", "may_have_applied"),
    [
        (None, True),  # no answer: a timeout or a reset after the request went out
        (504, True),  # the gateway lost the answer
        (502, True),
        (500, True),
        (200, True),  # an unreadable 2xx
        (503, False),  # refused: nothing was done
        (429, False),
    ],
    ids=lambda value: str(value),
)
def test_which_whole_call_failures_may_have_written(status, may_have_applied):
    """Only a failure without a definite refusal makes a create wait before its search."""
    failure = CallFailure(message="x", retryable=True, http_status=status)
    assert failure.may_have_applied is may_have_applied
