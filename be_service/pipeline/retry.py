"""Retry vs Error for a failed operation, decided from the failures recorded for it.

An operation of a revision may fail `max_retries` + 1 times; a retryable failure waits the
shared backoff (ticketing_common.backoff: full jitter), or the platform's Retry-After when longer.
"""

from __future__ import annotations

from dataclasses import dataclass

from ticketing_common.backoff import Backoff


@dataclass(frozen=True)
class Decision:
    give_up: bool
    delay_seconds: float = 0.0


def decide(
    *,
    failures: int,
    max_retries: int,
    retryable: bool,
    retry_after: float | None,
    backoff: Backoff,
) -> Decision:
    """`failures`: this operation's failed attempts in the current round, this one included."""
    if not retryable or failures > max_retries:
        return Decision(give_up=True)
    return Decision(give_up=False, delay_seconds=backoff.delay(failures, retry_after=retry_after))
