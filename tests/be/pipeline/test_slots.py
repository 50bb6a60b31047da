"""Batches in flight: the resizable slots and the hill climber that sizes them (slots.py)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from be_service.pipeline.health import PlatformHealth
from be_service.pipeline.slots import (
    BatchSlots,
    SlotsController,
    SlotsWindow,
    run_slots_controller,
)
from be_service.pipeline.worker import work_once
from tests.be.conftest import make_ticket
from tests.be.pipeline.conftest import InProcessPipeline


async def _holders(slots: BatchSlots, count: int, release: asyncio.Event) -> list[asyncio.Task]:
    async def hold() -> None:
        async with slots:
            await release.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(count)]
    await asyncio.sleep(0.01)
    return tasks


async def test_slots_admit_at_most_their_limit_and_more_once_raised():
    slots, release = BatchSlots(2), asyncio.Event()
    tasks = await _holders(slots, 5, release)
    assert slots.held == 2
    slots.resize(4)
    await asyncio.sleep(0.01)
    assert slots.held == 4
    release.set()
    await asyncio.gather(*tasks)
    assert slots.held == 0


async def test_lowering_the_limit_takes_nothing_from_holders_and_admits_no_one_above_it():
    slots, release = BatchSlots(3), asyncio.Event()
    tasks = await _holders(slots, 3, release)
    slots.resize(1)
    assert slots.held == 3  # nobody is interrupted
    waiting = asyncio.Event()

    async def late() -> None:
        async with slots:
            waiting.set()

    latecomer = asyncio.create_task(late())
    await asyncio.sleep(0.01)
    assert not waiting.is_set()
    release.set()
    await asyncio.gather(*tasks, latecomer)
    assert waiting.is_set() and slots.held == 0


async def test_a_slot_goes_to_the_longest_waiting_task_and_a_cancelled_waiter_gives_it_back():
    slots, order = BatchSlots(1), []
    gate = asyncio.Event()

    async def take(name: str) -> None:
        async with slots:
            order.append(name)
            await gate.wait()

    first = asyncio.create_task(take("first"))
    await asyncio.sleep(0.01)
    cancelled = asyncio.create_task(take("cancelled"))
    second = asyncio.create_task(take("second"))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    gate.set()
    await asyncio.gather(first, second)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert order == ["first", "second"]
    assert slots.held == 0


def test_the_controller_keeps_climbing_while_each_step_raises_the_rate():
    controller = SlotsController(floor=4, ceiling=20)
    limits = [
        controller.observe(completed=completed, seconds=1, backlog=True)
        for completed in (100, 150, 220, 330)
    ]
    assert limits == [6, 9, 14, 20]
    assert controller.observe(completed=400, seconds=1, backlog=True) == 20  # the ceiling


def test_a_step_that_does_not_pay_is_undone_and_not_tried_again_for_a_while():
    controller = SlotsController(floor=4, ceiling=20, hold_windows=2)
    assert controller.observe(completed=100, seconds=1, backlog=True) == 6
    # 6 batches in flight completed no more than 4 did (the cores are the limit).
    assert controller.observe(completed=104, seconds=1, backlog=True) == 4
    assert controller.observe(completed=100, seconds=1, backlog=True) == 4
    assert controller.observe(completed=100, seconds=1, backlog=True) == 4
    assert controller.observe(completed=100, seconds=1, backlog=True) == 6  # tried again


def test_without_a_backlog_the_count_returns_to_its_floor():
    controller = SlotsController(floor=4, ceiling=20)
    controller.observe(completed=100, seconds=1, backlog=True)
    assert controller.observe(completed=200, seconds=1, backlog=True) == 9
    assert controller.observe(completed=50, seconds=1, backlog=False) == 4
    assert controller.observe(completed=0, seconds=1, backlog=False) == 4


async def test_the_controller_task_applies_its_limit_from_what_the_workers_counted():
    """A window with full claims only and a rising rate raises the slots; windows in which
    no batch finished (all slower than the window) are not judged; a window with a short
    claim (the backlog ran out) brings them back to the floor."""
    slots, window, stop = BatchSlots(2), SlotsWindow(), asyncio.Event()
    changes: list[int] = []
    changed = asyncio.Event()

    def note(limit: int) -> None:
        changes.append(limit)
        changed.set()

    task = asyncio.create_task(
        run_slots_controller(
            slots,
            SlotsController(floor=2, ceiling=8),
            window,
            window_seconds=0.05,
            stop=stop,
            changed=note,
        )
    )
    window.batches, window.completed = 4, 400
    await asyncio.wait_for(changed.wait(), 5)
    assert slots.limit == 3
    changed.clear()
    await asyncio.sleep(0.5)  # ten windows: nothing finished, nothing ran out
    assert not changed.is_set() and slots.limit == 3
    window.batches, window.completed, window.short_claims = 4, 100, 1
    await asyncio.wait_for(changed.wait(), 5)
    assert slots.limit == 2
    stop.set()
    await asyncio.wait_for(task, 1)
    assert changes == [3, 2]


async def test_a_batch_counts_what_it_completed_not_what_it_claimed(
    pipeline: InProcessPipeline,
):
    """A batch parked behind an open circuit ends at once having completed nothing: it must
    not read as a rate to the controller (which would add batches in flight for it)."""
    await pipeline.intake(*(make_ticket() for _ in range(3)))
    cherwell = PlatformHealth("cherwell", failure_threshold=1, probe_interval=60)
    cherwell.failed("down")
    parked = dataclasses.replace(pipeline.context(), health={"cherwell": cherwell})
    window = SlotsWindow()
    assert await work_once(parked, worker="test-worker", window=window)
    assert (window.batches, window.completed) == (1, 0)

    window = SlotsWindow()
    await pipeline.intake(*(make_ticket() for _ in range(2)))
    assert await work_once(pipeline.context(), worker="test-worker", window=window)
    # The two new tickets; the parked three wait out the circuit's probe interval.
    assert (window.batches, window.completed) == (1, 2)
