"""Each platform's health as this BE sees it, and its circuit breaker.

A platform that fails as a whole (transport errors, timeouts, 5xx, 429, request limits, a
login that keeps failing) is not the tickets' fault: after `failure_threshold` such failures
in a row the circuit opens, the workers stop sending that platform's steps and the tickets
wait where they are. Every `probe_interval` (or the platform's Retry-After, when longer) one
worker gets a half-open trial: a real batch of one ticket. Its success closes the circuit
and the waiting tickets flow again by themselves; its failure opens it for another interval.

Pure state with an injected clock: `tests/be/test_circuit.py` walks it through a table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class CircuitState(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half_open"


class Permit(StrEnum):
    """What a worker may do with a platform's steps right now."""

    send = "send"  # closed: send whole batches
    probe = "probe"  # half-open trial: send one batch of size 1, then report
    wait = "wait"  # open, or another worker holds the trial: leave the tickets where they are


@dataclass
class HealthSnapshot:
    """What an operator (and the WM, through heartbeats) sees of one platform."""

    platform: str
    circuit: CircuitState
    consecutive_failures: int
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_failure: str | None
    logged_in: bool | None
    next_probe_in_seconds: float | None


class PlatformHealth:
    """Health and circuit of one platform in one BE process, shared by its workers."""

    def __init__(
        self,
        platform: str,
        *,
        failure_threshold: int,
        probe_interval: float,
        retry_after_cap: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.platform = platform
        self._threshold = failure_threshold
        self._probe_interval = probe_interval
        self._retry_after_cap = retry_after_cap
        self._clock = clock
        self._wall_clock = wall_clock
        self.state = CircuitState.closed
        self.consecutive_failures = 0
        self.last_success_at: datetime | None = None
        self.last_failure_at: datetime | None = None
        self.last_failure: str | None = None
        self.logged_in: bool | None = None
        self._probe_at = 0.0  # monotonic time of the next half-open trial
        self._probing = False  # a worker holds the trial

    def permit(self) -> Permit:
        """Ask before sending this platform's steps; a `probe` must be followed by a report."""
        if self.state is CircuitState.closed:
            return Permit.send
        if self._probing or self._clock() < self._probe_at:
            return Permit.wait
        self.state = CircuitState.half_open
        self._probing = True
        return Permit.probe

    def succeeded(self) -> None:
        """A call got an answer from the platform (even one refusing a ticket): it is up."""
        self.state = CircuitState.closed
        self.consecutive_failures = 0
        self.last_success_at = self._wall_clock()
        self._probing = False

    def failed(self, message: str, *, retry_after: float | None = None) -> None:
        """A platform-wide failure; opens the circuit at the threshold, or after a trial."""
        self.consecutive_failures += 1
        self.last_failure_at = self._wall_clock()
        self.last_failure = message
        trial_failed = self._probing or self.state is CircuitState.half_open
        self._probing = False
        if trial_failed or self.consecutive_failures >= self._threshold:
            wait = self._probe_interval
            if retry_after is not None:
                wait = max(wait, min(retry_after, self._retry_after_cap))
            self.state = CircuitState.open
            self._probe_at = self._clock() + wait

    def probe_abandoned(self) -> None:
        """The trial holder had nothing to send: let the next worker try at once."""
        if self._probing:
            self._probing = False

    def wait_seconds(self) -> float:
        """How long a revision parked behind this circuit should wait before it is taken
        again: until the next trial, so it flows right after the circuit closes."""
        return max(self._probe_at - self._clock(), 0.0) or self._probe_interval

    def login(self, *, ok: bool) -> None:
        self.logged_in = ok

    def snapshot(self) -> HealthSnapshot:
        waiting = self.state is not CircuitState.closed and not self._probing
        return HealthSnapshot(
            platform=self.platform,
            circuit=self.state,
            consecutive_failures=self.consecutive_failures,
            last_success_at=self.last_success_at,
            last_failure_at=self.last_failure_at,
            last_failure=self.last_failure,
            logged_in=self.logged_in,
            next_probe_in_seconds=max(0.0, self._probe_at - self._clock()) if waiting else None,
        )
