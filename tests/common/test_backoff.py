"""The one backoff policy (ticketing_common.backoff): full jitter, capped, Retry-After honoured."""

from __future__ import annotations

import random

from ticketing_common.backoff import Backoff


def test_backoff_grows_exponentially_within_its_full_jitter_band() -> None:
    """The n-th delay lies in [0, ceiling] with ceiling = base·2^(n-1), and uses the whole band."""
    backoff = Backoff(base_seconds=1, cap_seconds=60)
    rng = random.Random(7)
    for failures, ceiling in [(1, 1), (2, 2), (3, 4), (5, 16)]:
        delays = [backoff.delay(failures, rng=rng) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= ceiling
        # Full jitter, not equal jitter: retries also come sooner than half the ceiling.
        assert min(delays) < ceiling / 4 and max(delays) > ceiling * 3 / 4


def test_backoff_is_capped() -> None:
    """However many failures, no delay exceeds the cap."""
    backoff = Backoff(base_seconds=1, cap_seconds=60)
    assert max(backoff.delay(40, rng=random.Random(1)) for _ in range(200)) <= 60


def test_retry_after_is_a_floor_up_to_its_own_cap() -> None:
    """A Retry-After longer than the jitter wins, but never beyond retry_after_cap_seconds."""
    backoff = Backoff(base_seconds=1, cap_seconds=2, retry_after_cap_seconds=30)
    assert backoff.delay(1, retry_after=10, rng=random.Random(3)) == 10
    assert backoff.delay(1, retry_after=600, rng=random.Random(3)) == 30
