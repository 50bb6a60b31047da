"""A range of TCP ports of its own for each test worker, even with two suites on one host.

Each worker of a run (pytest-xdist's gw0, gw1, …) picks its free ports from a range below
the kernel's ephemeral ports (embedded_pg.free_port), so a port one test frees for a moment
(a service restarted on it) is never another worker's pick. Ranges used to be fixed by the
worker's number, and a second suite on the same machine (a developer's beside CI's) drew
from the same ranges: its services took ports the first had probed free a moment before,
and both failed at random ("Connect call failed"). A range is now held with a lock file
for as long as the worker lives: a worker takes the first range nobody holds.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

PORTS_PER_RANGE = 1500
FIRST_PORT = 10_000
# Linux hands out ephemeral ports from 32768 on: the ranges stay below.
LAST_PORT = 32_767


class PortRange:
    """Ports low..high, held until `release` (or the process's end closes the lock file)."""

    def __init__(self, low: int, high: int, lock_fd: int) -> None:
        self.low = low
        self.high = high
        self._lock_fd = lock_fd

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"

    def release(self) -> None:
        os.close(self._lock_fd)


def claim_port_range(
    *, lock_dir: Path | None = None, first: int = FIRST_PORT, last: int = LAST_PORT
) -> PortRange | None:
    """The first range of PORTS_PER_RANGE ports between `first` and `last` that no other
    process holds, now held by this one; None when every range is held."""
    folder = lock_dir or Path(tempfile.gettempdir())
    for low in range(first, last - PORTS_PER_RANGE + 2, PORTS_PER_RANGE):
        fd = os.open(folder / f"cable-ticketing-test-ports-{low}.lock", os.O_RDONLY | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return PortRange(low, low + PORTS_PER_RANGE - 1, fd)
    return None
