"""The one clock a service reads "now" from where time is part of the domain (a push's
received time, the retention horizon): injectable, so a soak can compress weeks into minutes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)
