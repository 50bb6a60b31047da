"""wait_for_event: the pause of every worker loop, which must never outlive a stop; Bell:
the wake-up of a BE's idle workers."""

from __future__ import annotations

import asyncio

from ticketing_common.waits import Bell, wait_for_event


async def test_it_says_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await wait_for_event(event, 0.01) is False
    event.set()
    assert await wait_for_event(event, 5) is True


async def test_a_stop_in_the_same_turn_as_a_wake_still_stops_the_loop() -> None:
    """A push's wake and the worker's cancellation arriving together: asyncio.wait_for
    (Python 3.11) returned the wake and dropped the cancellation, so the loop ran on and the
    service's shutdown never ended."""
    wake = asyncio.Event()

    async def loop() -> None:
        while True:
            await wait_for_event(wake, 0.01)
            wake.clear()

    for _ in range(50):
        task = asyncio.create_task(loop())
        await asyncio.sleep(0.003)
        wake.set()
        task.cancel()
        # asyncio.wait does not cancel on its timeout: a loop that swallowed the
        # cancellation shows as not done, instead of hanging the test.
        done, _ = await asyncio.wait({task}, timeout=1)
        assert task in done and task.cancelled(), "the loop swallowed its cancellation"


async def test_a_bell_wakes_every_waiter_and_only_those_waiting_when_it_rang() -> None:
    bell = Bell()
    waiters = [asyncio.create_task(bell.wait(5, since=bell.rings)) for _ in range(3)]
    await asyncio.sleep(0)  # all three are waiting
    bell.ring()
    assert await asyncio.gather(*waiters) == [True, True, True]
    # Nothing to clear: a wait that starts after the ring waits for the next one.
    assert await bell.wait(0.01, since=bell.rings) is False


async def test_a_ring_while_the_task_was_busy_is_not_slept_through() -> None:
    bell = Bell()
    before = bell.rings  # read before the work (a claim) that the ring may have missed
    bell.ring()
    assert await bell.wait(5, since=before) is True
