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

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

PORTS_PER_RANGE = 1500
FIRST_PORT = 10_000
# Linux hands out ephemeral ports from 32768 on: the ranges stay below.
LAST_PORT = 32_767
# Ports are the whole host's, so the locks are too: not under $TMPDIR, which a CI job or a
# user may set to a folder of its own, where another suite would never see them. (Only
# locked, never read or written: a file planted there can at worst hold a range.)
LOCK_DIR = Path(os.environ.get("TICKETING_TEST_PORT_LOCKS", "/tmp"))  # noqa: S108


class PortRange:
    """Ports low..high, held until `release` (or the process's end closes the lock file)."""

    def __init__(self, low: int, high: int, lock_fd: int | None) -> None:
        self.low = low
        self.high = high
        self._lock_fd = lock_fd

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"

    def __enter__(self) -> PortRange:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def claim_port_range(
    *, lock_dir: Path = LOCK_DIR, first: int = FIRST_PORT, last: int = LAST_PORT
) -> PortRange | None:
    """The first range of PORTS_PER_RANGE ports between `first` and `last` that no other
    process holds, now held by this one; None when every range is held.

    Raises OSError when no lock file can be made there at all (a folder that is missing or
    not writable)."""
    made_none: OSError | None = None
    for low in range(first, last - PORTS_PER_RANGE + 2, PORTS_PER_RANGE):
        path = lock_dir / f"cable-ticketing-test-ports-{low}.lock"
        try:
            fd = _open_lock_file(path)
        except PermissionError:
            continue  # another user's, not readable to us: treated as held
        except OSError as exc:
            made_none = exc
            continue
        # Whoever comes next, under any user, may lock it too (the umask narrowed the mode).
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return PortRange(low, low + PORTS_PER_RANGE - 1, fd)
    if made_none is not None:
        raise made_none
    return None


def _open_lock_file(path: Path) -> int:
    # Opened without O_CREAT when it exists: with fs.protected_regular (systemd's default),
    # O_CREAT on another user's file in a sticky folder such as /tmp is refused, even
    # though reading it is allowed.
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)


def fixed_port_range(worker: int) -> PortRange | None:
    """The range by the worker's number alone, held by no lock (the way before the locks):
    for a host where no lock file can be made. None past the last range."""
    low = FIRST_PORT + worker * PORTS_PER_RANGE
    if low + PORTS_PER_RANGE - 1 > LAST_PORT:
        return None
    return PortRange(low, low + PORTS_PER_RANGE - 1, None)
