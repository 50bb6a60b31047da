"""The per-platform circuit breaker, walked through scripted sequences with a fake clock."""

from __future__ import annotations

import pytest

from be_service.pipeline.health import CircuitState, Permit, PlatformHealth


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def health(clock: FakeClock, *, threshold: int = 3, probe_interval: float = 15.0) -> PlatformHealth:
    return PlatformHealth(
        "sfyc", failure_threshold=threshold, probe_interval=probe_interval, clock=clock
    )


# Each step: ("fail", retry_after) | ("ok",) | ("tick", seconds) | ("permit", expected)
# | ("abandon",) — then the expected circuit state after the step.
CASES = {
    "stays closed below the threshold": [
        (("fail", None), "closed"),
        (("fail", None), "closed"),
        (("permit", "send"), "closed"),
    ],
    "a success resets the count": [
        (("fail", None), "closed"),
        (("fail", None), "closed"),
        (("ok",), "closed"),
        (("fail", None), "closed"),
        (("fail", None), "closed"),
        (("permit", "send"), "closed"),
    ],
    "opens at the threshold and waits a probe interval": [
        (("fail", None), "closed"),
        (("fail", None), "closed"),
        (("fail", None), "open"),
        (("permit", "wait"), "open"),
        (("tick", 14.9), "open"),
        (("permit", "wait"), "open"),
        (("tick", 0.1), "open"),
        (("permit", "probe"), "half_open"),
    ],
    "only one worker holds the trial": [
        (("fail", None), "closed"),
        (("fail", None), "closed"),
        (("fail", None), "open"),
        (("tick", 15), "open"),
        (("permit", "probe"), "half_open"),
        (("permit", "wait"), "half_open"),
    ],
    "a successful trial closes the circuit": [
        (("fail", None), "closed"),
        (("fail", None), "closed"),
        (("fail", None), "open"),
        (("tick", 15), "open"),
        (("permit", "probe"), "half_open"),
        (("ok",), "closed"),
        (("permit", "send"), "closed"),
    ],
    "a failed trial opens it for another interval": [
        (("fail", None), "closed"),
        (("fail", None), "closed"),
        (("fail", None), "open"),
        (("tick", 15), "open"),
        (("permit", "probe"), "half_open"),
        (("fail", None), "open"),
        (("tick", 14), "open"),
        (("permit", "wait"), "open"),
        (("tick", 1), "open"),
        (("permit", "probe"), "half_open"),
    ],
    "Retry-After longer than the interval is honoured": [
        (("fail", None), "closed"),
        (("fail", None), "closed"),
        (("fail", 40.0), "open"),
        (("tick", 39), "open"),
        (("permit", "wait"), "open"),
        (("tick", 1), "open"),
        (("permit", "probe"), "half_open"),
    ],
    "an abandoned trial lets the next worker probe at once": [
        (("fail", None), "closed"),
        (("fail", None), "closed"),
        (("fail", None), "open"),
        (("tick", 15), "open"),
        (("permit", "probe"), "half_open"),
        (("abandon",), "half_open"),
        (("permit", "probe"), "half_open"),
    ],
}


@pytest.mark.parametrize("steps", CASES.values(), ids=CASES.keys())
def test_circuit(steps: list[tuple[tuple[object, ...], str]]) -> None:
    """The circuit state after each scripted step is the expected one."""
    clock = FakeClock()
    platform = health(clock)
    for number, (step, expected_state) in enumerate(steps):
        match step:
            case ("fail", retry_after):
                platform.failed("HTTP 503", retry_after=retry_after)  # type: ignore[arg-type]
            case ("ok",):
                platform.succeeded()
            case ("tick", seconds):
                clock.now += float(seconds)  # type: ignore[arg-type]
            case ("permit", expected):
                assert platform.permit() == Permit(str(expected)), f"step {number}"
            case ("abandon",):
                platform.probe_abandoned()
        assert platform.state == CircuitState(expected_state), f"step {number}: {step}"


def test_snapshot_tells_the_last_failure_and_the_next_probe() -> None:
    """An operator sees why the circuit is open and when the next trial happens."""
    clock = FakeClock()
    platform = health(clock, threshold=1, probe_interval=15)
    platform.failed("HTTP 503: Service Unavailable")
    clock.now = 5
    snapshot = platform.snapshot()
    assert snapshot.circuit == CircuitState.open
    assert snapshot.last_failure == "HTTP 503: Service Unavailable"
    assert snapshot.consecutive_failures == 1
    assert snapshot.next_probe_in_seconds == pytest.approx(10)
    assert snapshot.last_success_at is None
