"""Retry vs Error for a failed operation, decided from the failures recorded for it.

An operation of a revision may fail `max_retries` + 1 times; a retryable failure waits a
capped exponential backoff with full jitter, or the platform's Retry-After when longer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base_seconds: float
    cap_seconds: float
    retry_after_cap_seconds: float

    def delay(self, failures: int, *, retry_after: float | None = None) -> float:
        """Seconds to wait after the `failures`-th failure of one operation (failures ≥ 1)."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(failures - 1, 0))
        wait = random.uniform(0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.retry_after_cap_seconds))
        return wait


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
