"""How many of a BE's workers may hold a batch at once, found by trying.

Each worker holds one batch in flight (up to four requests a step, sent together: worker.py),
so with slow platforms the number of batches in flight bounds the rate (at 500 ms a call,
before batches took four requests: ~190 tickets/s with 8, ~265/s with 16, ~440/s with 32),
while with fast platforms the two cores are the bound and more batches in flight only cost
Postgres time (each claim steps over the revisions the others hold). Batch time
cannot tell the two apart: when the cores are saturated a batch takes longer too. So the
count is found the way a hill climber finds a top: while there is a backlog, try a step
(more, or fewer after a step up that did not pay), keep it if the completed rate says so,
go back and hold a while if not. Without a backlog the count returns to its floor
(BE_WORKERS); it never exceeds its ceiling (BE_WORKERS_MAX).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ticketing_common.waits import wait_for_event

log = logging.getLogger(__name__)


class BatchSlots:
    """An asyncio semaphore whose size can change: `async with slots:` holds one of `limit`
    slots, first come first served. Lowering the limit takes nothing from holders; it
    admits no one until fewer than the new limit hold a slot."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def held(self) -> int:
        return self._held

    def resize(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._hand_over()

    async def __aenter__(self) -> None:
        if self._held < self._limit and not self._waiters:
            self._held += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # resolved once a slot is handed over: counted as held already
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._held -= 1  # handed over, but this task was cancelled meanwhile
                self._hand_over()
            else:
                # Gone already if a release passed over it (cancelled, hence done).
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    async def __aexit__(self, *_: object) -> None:
        self._held -= 1
        self._hand_over()

    def _hand_over(self) -> None:
        # Only as many waiters as there are free slots wake (64 workers waking on every
        # release cost a BE a tenth of its CPU), each with its slot already counted, so no
        # task arriving meanwhile can take it first.
        while self._waiters and self._held < self._limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._held += 1
                waiter.set_result(None)


@dataclass
class SlotsController:
    """The hill climber: fed one window's rate, it answers the next limit.

    It tries a step (half as many again, or a third fewer) and keeps it if the rate says
    so: a step up only if the rate rose by `gain` (the machine's own noise must not ratchet
    the count up), a step down unless the rate fell by more than `loss` (fewer batches in
    flight for the same rate spare Postgres). A kept step is followed by another the same
    way; an undone one, or the ceiling reached, by `hold_windows` looks without a try, then
    a try the other way.
    """

    floor: int
    ceiling: int
    gain: float = 1.10
    loss: float = 0.95
    # The platforms' latency, and so the best count, change over hours.
    hold_windows: int = 6
    limit: int = field(init=False)
    _tried: tuple[bool, int, float] | None = field(default=None, init=False)  # up?, from, rate
    _hold: int = field(default=0, init=False)
    _up_next: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        self.limit = self.floor

    def observe(self, *, rate: float, backlog: bool) -> int:
        """The limit for the next window, given the rate (revisions completed a second) at
        the current limit and whether claimable revisions were left over throughout."""
        if not backlog:
            self.limit, self._tried, self._hold, self._up_next = self.floor, None, 0, True
            return self.limit
        climbed = False
        if self._tried is not None:
            up, previous_limit, previous_rate = self._tried
            self._tried = None
            threshold = previous_rate * (self.gain if up else self.loss)
            # Nothing completed says nothing about the count (a platform down, say).
            if rate <= 0 or rate < threshold:
                self.limit, self._hold, self._up_next = previous_limit, self.hold_windows, not up
                return self.limit
            self._up_next, climbed = up, up
        elif rate <= 0:
            return self.limit
        if self._hold > 0:
            self._hold -= 1
            return self.limit
        step = self._step(up=self._up_next)
        if step is None and climbed:  # the ceiling, just reached: stay a while
            self._up_next, self._hold = False, self.hold_windows
            return self.limit
        if step is None:  # the floor or the ceiling: the other way
            self._up_next = not self._up_next
            step = self._step(up=self._up_next)
        if step is not None:
            self._tried = (step > self.limit, self.limit, rate)
            self.limit = step
        return self.limit

    def _step(self, *, up: bool) -> int | None:
        """The next limit that way, None at the ceiling (up) or the floor (down)."""
        if up:
            return (
                min(self.ceiling, math.ceil(self.limit * 1.5))
                if self.limit < self.ceiling
                else None
            )
        return max(self.floor, self.limit * 2 // 3) if self.limit > self.floor else None


@dataclass
class SlotsWindow:
    """What the workers tell the controller between two of its looks."""

    batches: int = 0
    completed: int = 0
    # The finished batches' durations, summed. With every slot busy (a backlog) the slots'
    # rate is limit x completed / busy_seconds. Counting completions in a time window
    # instead read the workers' rounds, which start together and end together, as the rate
    # (one round more or less in a window: +-50 %).
    busy_seconds: float = 0.0
    # Claims that came back with less than a full batch: the backlog ran out at least once.
    short_claims: int = 0

    def finished(self, *, completed: int, seconds: float) -> None:
        self.batches += 1
        self.completed += completed
        self.busy_seconds += seconds

    def rate(self, slots: int) -> float:
        return slots * self.completed / self.busy_seconds if self.busy_seconds > 0 else 0.0

    def take(self) -> SlotsWindow:
        taken = dataclasses.replace(self)
        self.batches, self.completed, self.busy_seconds, self.short_claims = 0, 0, 0.0, 0
        return taken


async def run_slots_controller(
    slots: BatchSlots,
    controller: SlotsController,
    window: SlotsWindow,
    *,
    window_seconds: float,
    stop: asyncio.Event,
    changed: Callable[[int], None],
) -> None:
    """Every window, hand the controller the slots' rate and apply the limit it answers.

    A window is judged once as many batches finished in it as there are slots (one slow
    batch is not a rate); one in which the backlog ran out, at once. One in which nothing
    finished and nothing ran out (every slot holds a batch slower than the window) goes on.
    The window right after a change is let go unjudged: its batches began under the old
    limit."""
    settling = False
    while not await wait_for_event(stop, window_seconds):
        if not (window.short_claims or window.batches >= slots.limit):
            continue
        seen = window.take()
        if settling:
            settling = False
            if not seen.short_claims:
                continue
        rate = seen.rate(slots.limit)
        limit = controller.observe(rate=rate, backlog=seen.batches > 0 and not seen.short_claims)
        if limit != slots.limit:
            log.info(
                "batches in flight %d -> %d (%.0f revisions/s at %d, %d batches seen)",
                slots.limit,
                limit,
                rate,
                slots.limit,
                seen.batches,
            )
            slots.resize(limit)
            changed(limit)
            settling = True
