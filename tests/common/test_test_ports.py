"""Two test runs on one host never draw ports from the same range (tests/support/ports.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.ports import PORTS_PER_RANGE, claim_port_range

LOW = 20_000
TWO_RANGES = {"first": LOW, "last": LOW + 2 * PORTS_PER_RANGE - 1}


def test_a_range_held_by_one_worker_is_not_given_to_another(tmp_path: Path) -> None:
    first = claim_port_range(lock_dir=tmp_path, **TWO_RANGES)
    second = claim_port_range(lock_dir=tmp_path, **TWO_RANGES)
    assert first is not None and second is not None
    with first, second:
        assert (first.low, first.high) == (LOW, LOW + PORTS_PER_RANGE - 1)
        assert (second.low, second.high) == (LOW + PORTS_PER_RANGE, LOW + 2 * PORTS_PER_RANGE - 1)
        # Both held: nothing is left for a third.
        assert claim_port_range(lock_dir=tmp_path, **TWO_RANGES) is None


def test_a_released_range_is_taken_again(tmp_path: Path) -> None:
    held = claim_port_range(lock_dir=tmp_path)
    assert held is not None
    held.release()
    again = claim_port_range(lock_dir=tmp_path)
    assert again is not None
    with again:
        assert again.low == held.low
    held.release()  # a second release is harmless


def test_lock_files_can_be_taken_by_whoever_comes_next(tmp_path: Path) -> None:
    """Made readable to all whatever the umask, so another user's suite can lock them."""
    old = os.umask(0o077)
    try:
        with claim_port_range(lock_dir=tmp_path):
            pass
    finally:
        os.umask(old)
    (lock,) = tmp_path.iterdir()
    assert lock.stat().st_mode & 0o777 == 0o666


def test_a_folder_where_no_lock_can_be_made_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        claim_port_range(lock_dir=tmp_path / "missing")
