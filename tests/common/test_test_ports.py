"""Two test runs on one host never draw ports from the same range (tests/support/ports.py)."""

from __future__ import annotations

from pathlib import Path

from tests.support.ports import PORTS_PER_RANGE, claim_port_range

LOW = 20_000
TWO_RANGES = {"first": LOW, "last": LOW + 2 * PORTS_PER_RANGE - 1}


def test_a_range_held_by_one_worker_is_not_given_to_another(tmp_path: Path) -> None:
    first = claim_port_range(lock_dir=tmp_path, **TWO_RANGES)
    second = claim_port_range(lock_dir=tmp_path, **TWO_RANGES)
    assert first is not None and second is not None
    assert (first.low, first.high) == (LOW, LOW + PORTS_PER_RANGE - 1)
    assert (second.low, second.high) == (LOW + PORTS_PER_RANGE, LOW + 2 * PORTS_PER_RANGE - 1)
    # Both held: nothing is left for a third.
    assert claim_port_range(lock_dir=tmp_path, **TWO_RANGES) is None
    second.release()
    first.release()


def test_a_released_range_is_taken_again(tmp_path: Path) -> None:
    held = claim_port_range(lock_dir=tmp_path)
    assert held is not None
    held.release()
    again = claim_port_range(lock_dir=tmp_path)
    assert again is not None and again.low == held.low
    again.release()
