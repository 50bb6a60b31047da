"""The one backoff policy: capped exponential with full jitter, honouring Retry-After.

Used wherever a failed call is tried again later (the WM's deliveries to BEs, the BE's
platform operations), so retries of many rows or processes that failed together spread out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base_seconds: float
    cap_seconds: float
    # A platform may ask for a long pause; it is honoured up to this bound.
    retry_after_cap_seconds: float = 300.0

    def delay(
        self, failures: int, *, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after the `failures`-th consecutive failure (failures ≥ 1):
        uniform in [0, min(cap, base·2^(failures-1))], at least `retry_after` (capped)."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(failures - 1, 0))
        wait = (rng or random).uniform(0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.retry_after_cap_seconds))
        return wait
