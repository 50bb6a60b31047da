"""Waiting for an event with a time limit, the way every worker loop pauses between passes.

`asyncio.wait_for` on Python 3.11 can lose a cancellation that arrives just as its timeout
fires: it raises TimeoutError instead, which the loops suppress, so a worker being stopped
ran on and its stop() waited forever (seen as a test teardown that never ended).
`asyncio.timeout` tells its own cancellation from one sent by somebody else.
"""

from __future__ import annotations

import asyncio


async def wait_for_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` pass; whether it was set. A cancellation of
    the waiting task always propagates."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


class Bell:
    """Wakes every task waiting on it when it rings, and tells a task that is about to
    wait whether it rang since a count the task read earlier (so a ring that came while the
    task was busy is not slept through).

    Ring it from the event loop's thread only (asyncio is not thread-safe): from a request,
    as an async background task.
    """

    def __init__(self) -> None:
        self._rung = asyncio.Event()
        self.rings = 0

    def ring(self) -> None:
        rung, self._rung = self._rung, asyncio.Event()
        self.rings += 1
        rung.set()

    async def wait(self, seconds: float, *, since: int) -> bool:
        """Wait for a ring, at most `seconds`; whether one came after `rings` was `since`."""
        if self.rings != since:
            return True
        return await wait_for_event(self._rung, seconds)
