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


async def test_slots_admit_at_most_their_limit_and_more_once_raised():
    slots, release, inside = BatchSlots(2), asyncio.Event(), []

    async def hold(n: int) -> None:
        async with slots:
            inside.append(n)
            await release.wait()

    tasks = [asyncio.create_task(hold(n)) for n in range(5)]
    await asyncio.sleep(0.01)
    assert inside == [0, 1]
    slots.resize(4)
    await asyncio.sleep(0.01)
    assert inside == [0, 1, 2, 3]  # in the order they came
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert inside == [0, 1, 2, 3, 4] and slots.held == 0


async def test_lowering_the_limit_takes_nothing_from_holders_and_admits_no_one_above_it():
    slots, inside = BatchSlots(3), []
    releases = [asyncio.Event() for _ in range(3)]

    async def hold(n: int) -> None:
        async with slots:
            inside.append(n)
            await releases[n].wait()

    async def late() -> None:
        async with slots:
            inside.append("late")

    holders = [asyncio.create_task(hold(n)) for n in range(3)]
    await asyncio.sleep(0.01)
    slots.resize(1)
    latecomer = asyncio.create_task(late())
    for n in range(2):  # 3 and then 2 holding: at or above the new limit of 1
        await asyncio.sleep(0.01)
        assert "late" not in inside
        releases[n].set()
    await asyncio.sleep(0.01)
    assert "late" not in inside  # one still holds: the limit is 1
    releases[2].set()
    await asyncio.wait_for(asyncio.gather(*holders, latecomer), 1)
    assert inside == [0, 1, 2, "late"] and slots.held == 0


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
    await asyncio.wait_for(asyncio.gather(first, second), 1)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert order == ["first", "second"]
    assert slots.held == 0


async def test_a_waiter_cancelled_before_a_release_passes_over_it_raises_cancelled():
    """A release hands the slot past a cancelled waiter; the cancelled task must still end
    with its CancelledError (not a ValueError from a queue it already left)."""
    slots = BatchSlots(1)
    await slots.__aenter__()

    async def wait() -> None:
        async with slots:
            pass

    waiter = asyncio.create_task(wait())
    await asyncio.sleep(0.01)
    waiter.cancel()
    await slots.__aexit__(None, None, None)  # before the cancelled task runs again
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots.held == 0


async def test_a_slot_handed_over_to_a_task_cancelled_meanwhile_goes_to_the_next():
    slots, entered = BatchSlots(1), []
    await slots.__aenter__()

    async def wait(name: str) -> None:
        async with slots:
            entered.append(name)

    first = asyncio.create_task(wait("first"))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(wait("second"))
    await asyncio.sleep(0.01)
    await slots.__aexit__(None, None, None)  # handed over to "first", counted as held
    first.cancel()  # before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)
    assert entered == ["second"] and slots.held == 0


def test_the_controller_keeps_climbing_while_each_step_raises_the_rate():
    controller = SlotsController(floor=4, ceiling=20)
    limits = [controller.observe(rate=rate, backlog=True) for rate in (100, 150, 220, 330)]
    assert limits == [6, 9, 14, 20]
    assert controller.observe(rate=400, backlog=True) == 20  # the ceiling: it stays
    assert [controller.observe(rate=400, backlog=True) for _ in range(6)] == [20] * 6
    assert controller.observe(rate=400, backlog=True) == 13  # then sees if fewer do as well


def test_a_step_that_does_not_pay_is_undone_and_not_tried_again_for_a_while():
    controller = SlotsController(floor=4, ceiling=20, hold_windows=2)
    assert controller.observe(rate=100, backlog=True) == 6
    # 6 batches in flight completed no more than 4 did (the cores are the limit).
    assert controller.observe(rate=104, backlog=True) == 4
    assert controller.observe(rate=100, backlog=True) == 4
    assert controller.observe(rate=100, backlog=True) == 4
    assert controller.observe(rate=100, backlog=True) == 6  # tried again


def test_after_a_step_up_that_did_not_pay_the_next_try_is_a_step_down():
    controller = SlotsController(floor=4, ceiling=40, hold_windows=0)
    assert controller.observe(rate=100, backlog=True) == 6
    assert controller.observe(rate=150, backlog=True) == 9  # 6 paid: up again
    assert controller.observe(rate=152, backlog=True) == 6  # 9 did not: back to 6
    assert controller.observe(rate=150, backlog=True) == 4  # then a try down
    # 4 kept the rate within 5 %: kept, and at the floor the next try is up again.
    assert controller.observe(rate=146, backlog=True) == 6


def test_at_the_ceiling_a_try_down_that_did_not_pay_waits_one_hold_before_the_next():
    controller = SlotsController(floor=4, ceiling=9, hold_windows=2)
    assert [controller.observe(rate=r, backlog=True) for r in (100, 150, 230)] == [6, 9, 9]
    assert [controller.observe(rate=230, backlog=True) for _ in range(2)] == [9, 9]  # hold
    assert controller.observe(rate=230, backlog=True) == 6  # fewer?
    assert controller.observe(rate=150, backlog=True) == 9  # no: back
    assert [controller.observe(rate=230, backlog=True) for _ in range(2)] == [9, 9]  # hold
    assert controller.observe(rate=230, backlog=True) == 6  # and again, not a second hold


def test_a_step_down_that_costs_rate_is_undone():
    controller = SlotsController(floor=4, ceiling=40, hold_windows=0)
    controller.observe(rate=100, backlog=True)  # trying 6
    controller.observe(rate=150, backlog=True)  # kept, trying 9
    controller.observe(rate=150, backlog=True)  # undone: 6
    assert controller.observe(rate=150, backlog=True) == 4  # trying 4
    assert controller.observe(rate=120, backlog=True) == 6  # it cost 20 %: undone


def test_no_completions_never_make_a_step_look_good():
    """A backlog parked behind an open circuit completes nothing: the count must not climb
    on a rate of zero (0 >= 0 x 1.1)."""
    controller = SlotsController(floor=4, ceiling=40)
    assert [controller.observe(rate=0, backlog=True) for _ in range(5)] == [4] * 5
    controller.observe(rate=100, backlog=True)  # trying 6
    assert controller.observe(rate=0, backlog=True) == 4


def test_the_window_rate_weighs_each_batch_by_its_duration():
    """Four slots, one batch of 100 in 1 s and a parked one of 0 in 0.01 s: the slots
    complete 4 x 100 / 1.01 a second, not 4 x the mean of 100/s and 0/s."""
    window = SlotsWindow()
    window.finished(completed=100, seconds=1.0)
    window.finished(completed=0, seconds=0.01)
    assert window.rate(4) == pytest.approx(400 / 1.01)


def test_without_a_backlog_the_count_returns_to_its_floor():
    controller = SlotsController(floor=4, ceiling=20)
    controller.observe(rate=100, backlog=True)
    assert controller.observe(rate=200, backlog=True) == 9
    assert controller.observe(rate=50, backlog=False) == 4
    assert controller.observe(rate=0, backlog=False) == 4


async def test_the_controller_task_judges_the_slots_rate_and_lets_the_first_window_settle():
    """Full claims and a rate that rises raise the slots; the window right after a change
    is not judged (its batches began under the old limit); windows in which no batch
    finished (all slower than the window) are not judged either; a try that did not pay is
    undone; a short claim (the backlog ran out) brings the slots back to the floor."""
    slots, window, stop = BatchSlots(2), SlotsWindow(), asyncio.Event()
    changes: list[int] = []
    changed = asyncio.Event()

    def note(limit: int) -> None:
        changes.append(limit)
        changed.set()

    async def next_change() -> None:
        await asyncio.wait_for(changed.wait(), 5)
        changed.clear()

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
    for _ in range(2):  # two slots, each batch 100 revisions in 1 s: 200/s
        window.finished(completed=100, seconds=1.0)
    await next_change()
    assert slots.limit == 3
    for _ in range(3):  # the settling window: not judged, whatever it says
        window.finished(completed=10, seconds=1.0)
    await asyncio.sleep(0.5)  # and ten windows in which nothing finished
    assert not changed.is_set() and slots.limit == 3
    for _ in range(3):  # three slots at 60/s each: 180/s, no better than 200/s
        window.finished(completed=60, seconds=1.0)
    await next_change()
    assert slots.limit == 2
    stop.set()
    await asyncio.wait_for(task, 1)
    assert changes == [3, 2]


async def test_a_short_claim_sends_the_slots_back_to_their_floor():
    slots, window, stop = BatchSlots(2), SlotsWindow(), asyncio.Event()
    controller = SlotsController(floor=2, ceiling=8)
    controller.observe(rate=100, backlog=True)  # tried 3
    controller.observe(rate=200, backlog=True)  # kept, trying 5
    slots.resize(controller.limit)
    changes: list[int] = []
    task = asyncio.create_task(
        run_slots_controller(
            slots, controller, window, window_seconds=0.02, stop=stop, changed=changes.append
        )
    )
    window.short_claims = 1
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert changes == [2] and slots.limit == 2


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
