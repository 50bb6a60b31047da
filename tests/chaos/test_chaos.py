"""Chaos: one run of the whole system through every fault we know, then exactly-once checks.

Real processes over real HTTP (emulators, WM, two BEs) on a Postgres of the test's own, so
that it can be restarted. In turn: 30 % 503s and lost answers from both platforms, the WM
SIGKILLed right after a big push answered (its revisions written after the answer), a
Postgres restart, a BE SIGKILLed mid-delivery (back before failover), and the WM SIGKILLed
mid-push (the aggregator then resends). Then every element has exactly one incident and one
work order, linked; its notes follow its revisions in order; nothing is lost, nothing is in
Error. The counts are printed (`pytest -s`); bench/chaos.py runs the same at 2 000 elements.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.chaos.support import ChaosSystem, chaos_system, run_scenario

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

ELEMENTS = 200


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[ChaosSystem]:
    with chaos_system(tmp_path) as system:
        yield system


def test_every_fault_in_turn_leaves_exactly_one_incident_and_work_order(
    chaos: ChaosSystem,
) -> None:
    """200 elements opened, updated and half cleared through the faults: exactly once."""
    tally = run_scenario(chaos, elements=ELEMENTS, now=datetime.now(UTC).replace(microsecond=0))
    print(tally.summary())
    assert tally.elements == ELEMENTS
    assert tally.lost == 0, tally.summary()
    assert tally.duplicate_incidents == 0, tally.summary()
    assert tally.duplicate_work_orders == 0, tally.summary()
    assert tally.unlinked == 0, tally.summary()
    assert tally.notes_out_of_order == 0, tally.summary()
    assert tally.in_error == 0, tally.summary()
