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


async def test_a_bell_wakes_one_waiter_per_ring_or_every_one_when_asked() -> None:
    bell = Bell()
    waiters = [asyncio.create_task(bell.wait(5)) for _ in range(3)]
    await asyncio.sleep(0)  # all three are waiting
    bell.ring()
    await asyncio.sleep(0)
    assert [w.done() for w in waiters] == [True, False, False]
    bell.ring(everyone=True)
    assert await asyncio.gather(*waiters) == [True, True, True]
    # Each ring was taken: the next wait waits.
    assert await bell.wait(0.01) is False


async def test_a_ring_nobody_waited_for_is_kept_for_the_next_wait_once() -> None:
    """A worker busy claiming when the intake rang looks again instead of sleeping."""
    bell = Bell()
    bell.ring()
    bell.ring()
    assert await bell.wait(5) is True
    assert await bell.wait(0.01) is False
