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
    """Wakes every task waiting on it at the moment it rings (an Event that clears itself).

    A waiter that starts waiting after a ring waits for the next one, so no task needs to
    clear anything and none can miss a ring by clearing another's.
    """

    def __init__(self) -> None:
        self._rung = asyncio.Event()

    def ring(self) -> None:
        self._rung.set()
        self._rung = asyncio.Event()

    async def wait(self, seconds: float) -> bool:
        """Wait for the next ring, at most `seconds`; whether it rang."""
        return await wait_for_event(self._rung, seconds)
