"""Background loops: how a worker runs one, and how it pauses between passes.

`asyncio.wait_for` on Python 3.11 can lose a cancellation that arrives just as its timeout
fires: it raises TimeoutError instead, which the loops suppress, so a worker being stopped
ran on and its stop() waited forever (seen as a test teardown that never ended).
`asyncio.timeout` tells its own cancellation from one sent by somebody else.
"""

from __future__ import annotations

import asyncio
import collections
from abc import ABC, abstractmethod


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
    """Wakes one waiting task per ring (or every one, when asked): the task it woke rings
    again if it finds more to do than it can take, so work fans out without every idle
    task racing for each small piece of it.

    A ring while nobody waits is kept for the next task that waits (one ring is kept,
    however many came): a task busy when it rang, whose view may predate what the ring
    announces, looks again instead of sleeping through it.

    Ring it from the event loop's thread only (asyncio is not thread-safe): from a request,
    as an async background task.
    """

    def __init__(self) -> None:
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._kept = False

    def ring(self, *, everyone: bool = False) -> None:
        woke = False
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                woke = True
                if not everyone:
                    return
        if not woke:
            self._kept = True

    async def wait(self, seconds: float) -> bool:
        """Wait for a ring (or take the kept one), at most `seconds`; whether one came."""
        if self._kept:
            self._kept = False
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(seconds):
                await waiter
        except TimeoutError:
            # Rung in the very turn the time ran out: the ring was meant for this task.
            return waiter.done() and not waiter.cancelled()
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class LoopWorker(ABC):
    """A worker whose work is one loop (`_loop`), run from start() until stop()."""

    task_name = "worker"
    _task: asyncio.Task[None] | None = None

    @abstractmethod
    async def _loop(self) -> None:
        """The worker's work, until it is cancelled."""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
