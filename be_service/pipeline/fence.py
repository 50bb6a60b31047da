"""This BE's side of the fencing (docs/contracts.md §5): may it call the platforms for a revision?

The WM answers every heartbeat with a lease grant: the generation this BE's deliveries are
sent under, how long the BE may call the platforms from when it sent that heartbeat, and how
long one call may take. A revision delivered under a generation (`generation` not NULL) is
sent only while the lease runs and only if its generation is the current one; a revision of an
older generation has moved to another BE and is given up (`Moved`, store.mark_moved).

A BE without BE_WM_URL never heartbeats, so the WM never fences it: it sends everything, as
do revisions that came without a generation (a WM registered by hand, a direct intake).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

# The SQL claim's stand-in for "no current generation": matches no delivered generation.
NO_GENERATION = -1


@dataclass(frozen=True)
class LeaseGrant:
    generation: int
    lease_seconds: float
    max_call_seconds: float


@dataclass
class Fence:
    """Shared by a process's workers and its heartbeat; the clock is monotonic."""

    enabled: bool
    clock: Callable[[], float] = time.monotonic
    generation: int | None = None
    max_call_seconds: float | None = None
    _lease_until: float = field(default=float("-inf"), repr=False)

    def renew(self, grant: LeaseGrant, *, sent_at: float) -> bool:
        """Take a heartbeat answer; the lease counts from when the heartbeat was *sent*
        (the WM counts silence from when it arrived, later). True if the generation moved."""
        moved = grant.generation != self.generation
        self.generation = grant.generation
        self.max_call_seconds = grant.max_call_seconds
        self._lease_until = sent_at + grant.lease_seconds
        return moved

    def holds_lease(self) -> bool:
        return self.clock() < self._lease_until

    def allows(self, generation: int | None) -> bool:
        """May a revision delivered under `generation` be sent to the platforms now?"""
        if generation is None or not self.enabled:
            return True
        return self.holds_lease() and generation == self.generation

    def claimable_generation(self) -> int:
        """The generation whose revisions a worker may claim now (NO_GENERATION: none)."""
        if self.generation is not None and self.holds_lease():
            return self.generation
        return NO_GENERATION

    def call_timeout(self) -> float | None:
        """How long one platform call may take: the WM's bound, once it has answered."""
        return self.max_call_seconds if self.enabled else None

    def lease_left(self) -> float:
        return max(0.0, self._lease_until - self.clock())
