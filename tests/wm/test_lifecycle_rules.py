"""The lifecycle rules as a table: one row per case, no database (services/lifecycle.py)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest
from msgspec.structs import replace

from wm_service import kinds
from wm_service.kinds import KindSpec
from wm_service.services.critical import WindowStats
from wm_service.services.lifecycle import (
    Decision,
    EntityFacts,
    Maintenance,
    OpenTicket,
    decide,
    priority,
    tally,
)
from wm_service.services.settings import default_rules
from wm_service.services.ticket_document import Place

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
RULES = default_rules().model_copy(update={"min_critical_incidents": 2})
SNR = kinds.SNR_UPSTREAM
TICKET = uuid.UUID(int=1)


def facts(
    *,
    samples: int | None,
    ticket: str | None = None,
    subscribers: int | None = 30,
    worst: float = 23.0,
    new: bool = False,
) -> EntityFacts:
    """One entity: `samples` critical samples in the window, an open ticket at `ticket`."""
    stats = None if samples is None else WindowStats(samples, AT, AT, worst)
    place = Place("Monterrey", "MTY01", "CCAP02", "N1", None, subscribers)
    open_ticket = None if ticket is None else OpenTicket(TICKET, 3, ticket)
    return EntityFacts("E1", stats, open_ticket, place, new)


# (entity facts, expected (action, reason, priority) or None for no decision)
CASES = {
    "critical without a ticket opens one": (
        facts(samples=2, subscribers=30),
        ("open", "critical", "P3"),
    ),
    "fewer critical samples than the minimum open nothing": (facts(samples=1), None),
    "no critical sample and no ticket need no decision": (facts(samples=None), None),
    "no critical sample left clears the open ticket": (
        facts(samples=None, ticket="P2"),
        ("clear", "recovered", "P2"),
    ),
    "fewer than the minimum left clears the open ticket": (
        facts(samples=1, ticket="P3"),
        ("clear", "recovered", "P3"),
    ),
    "new critical samples update the ticket": (
        facts(samples=2, ticket="P3", subscribers=30, new=True),
        ("update", "new_samples", "P3"),
    ),
    "a worse priority updates without new samples": (
        facts(samples=2, ticket="P3", subscribers=250),
        ("update", "priority_raised", "P1"),
    ),
    "a worse priority with new samples is reported as the raise": (
        facts(samples=2, ticket="P3", subscribers=100, new=True),
        ("update", "priority_raised", "P2"),
    ),
    "same samples and priority leave the ticket unchanged": (
        facts(samples=2, ticket="P3", subscribers=30),
        ("unchanged", "no_change", "P3"),
    ),
    "a smaller audience never lowers the priority": (
        facts(samples=2, ticket="P1", subscribers=5),
        ("unchanged", "no_change", "P1"),
    ),
    "a smaller audience with new samples updates at the old priority": (
        facts(samples=2, ticket="P1", subscribers=5, new=True),
        ("update", "new_samples", "P1"),
    ),
    "SNR below 20 dB opens at P1 whatever the audience": (
        facts(samples=2, subscribers=3, worst=19.9),
        ("open", "critical", "P1"),
    ),
    "SNR at 20 dB is not the P1 rule": (
        facts(samples=2, subscribers=3, worst=20.0),
        ("open", "critical", "P4"),
    ),
}


@pytest.mark.parametrize(("entity", "expected"), list(CASES.values()), ids=list(CASES))
def test_lifecycle_decision(entity: EntityFacts, expected: tuple[str, str, str] | None) -> None:
    """Each row: the facts of one entity and the decision the rules take for it."""
    decisions = decide([entity], spec=SNR, rules=RULES)
    if expected is None:
        assert decisions == []
        return
    [decision] = decisions
    assert (decision.action, decision.reason, decision.priority) == expected
    assert decision.ticket == entity.ticket
    assert decision.stats == (None if decision.action == "clear" else entity.stats)


LOW_IS_BAD_WITHOUT_P1 = dataclasses.replace(SNR, name="test-low", p1_worst_value=None)
HIGH_IS_BAD_WITH_P1 = dataclasses.replace(
    kinds.US_SERVICE_GROUP, name="test-high", p1_worst_value=95.0
)

# (kind, subscribers affected, worst value, expected priority)
PRIORITIES = {
    "unknown audience is P4": (SNR, None, 23.0, "P4"),
    "9 subscribers is P4": (SNR, 9, 23.0, "P4"),
    "10 subscribers is P3": (SNR, 10, 23.0, "P3"),
    "64 subscribers is P3": (SNR, 64, 23.0, "P3"),
    "65 subscribers is P2": (SNR, 65, 23.0, "P2"),
    "199 subscribers is P2": (SNR, 199, 23.0, "P2"),
    "200 subscribers is P1": (SNR, 200, 23.0, "P1"),
    "the SNR P1 value applies to SNR": (SNR, 3, 19.0, "P1"),
    "utilisation has no P1 value": (kinds.US_SERVICE_GROUP, 3, 100.0, "P4"),
    "a lower-is-worse kind without a P1 value is not P1 when low": (
        LOW_IS_BAD_WITHOUT_P1,
        3,
        1.0,
        "P4",
    ),
    "a higher-is-worse P1 value counts at the value": (HIGH_IS_BAD_WITH_P1, 3, 95.0, "P1"),
}


@pytest.mark.parametrize(
    ("spec", "subscribers", "worst", "expected"), list(PRIORITIES.values()), ids=list(PRIORITIES)
)
def test_priority_rule(
    spec: KindSpec, subscribers: int | None, worst: float, expected: str
) -> None:
    """Priority bands by audience, and each kind's own P1 value."""
    assert priority(spec, subscribers=subscribers, worst_value=worst) == expected


def test_tally_counts_each_action_and_the_critical_entries() -> None:
    """An unchanged ticket counts as critical; a clear does not."""
    entities = [
        facts(samples=2),
        facts(samples=2, ticket="P3", new=True),
        facts(samples=2, ticket="P3"),
        facts(samples=None, ticket="P3"),
        facts(samples=1),
    ]
    decisions: list[Decision] = decide(entities, spec=SNR, rules=RULES)
    counts, critical = tally(decisions)
    assert counts.model_dump() == {"opened": 1, "updated": 1, "cleared": 1, "unchanged": 1}
    assert critical == 3


def held(
    *,
    samples: int | None,
    raw: int | None,
    ticket: str | None = None,
    covering: int | None = 7,
    excluded_by: int | None = 7,
    held_by: int | None = None,
    new: bool = False,
) -> EntityFacts:
    """An entity touched by window 7: `samples` count outside it, `raw` without any window."""
    plain = facts(samples=samples, ticket=ticket, new=new)
    open_ticket = None if ticket is None else OpenTicket(TICKET, 3, ticket, held_by)
    raw_stats = None if raw is None else WindowStats(raw, AT, AT, 23.0)
    touched = Maintenance(covering, excluded_by, raw_stats)
    return replace(plain, ticket=open_ticket, maintenance=touched)


def released(*, samples: int | None, ticket: str = "P3", new: bool = False) -> EntityFacts:
    """An open ticket on which window 7's start was noted; no window covers it any more."""
    plain = facts(samples=samples, ticket=ticket, new=new)
    return replace(plain, ticket=OpenTicket(TICKET, 3, ticket, 7))


# (entity facts, expected (action, reason, priority, what was held back, window noted after))
MAINTENANCE_CASES = {
    "a covered critical entity opens nothing: the open is held back": (
        held(samples=None, raw=2),
        ("suppressed", "maintenance:7", "P3", "open", None),
    ),
    "a covered entity critical before the window still opens nothing": (
        held(samples=2, raw=3, excluded_by=None),
        ("suppressed", "maintenance:7", "P3", "open", None),
    ),
    "a covered healthy entity needs no decision": (held(samples=None, raw=None), None),
    "a window starting over an open ticket adds one note": (
        held(samples=2, raw=3, ticket="P3", new=True),
        ("update", "maintenance:7", "P3", None, 7),
    ),
    "a window starting over a recovered ticket notes it instead of clearing": (
        held(samples=None, raw=None, ticket="P3"),
        ("update", "maintenance:7", "P3", None, 7),
    ),
    "new samples on a noted ticket are held back": (
        held(samples=2, raw=3, ticket="P3", held_by=7, new=True),
        ("suppressed", "maintenance:7", "P3", "update", 7),
    ),
    "a recovery under the window is held back": (
        held(samples=None, raw=None, ticket="P3", held_by=7),
        ("suppressed", "maintenance:7", "P3", "clear", 7),
    ),
    "nothing new on a noted ticket leaves it unchanged": (
        held(samples=2, raw=2, ticket="P3", held_by=7),
        ("unchanged", "maintenance:7", "P3", None, 7),
    ),
    "the window's end is one note": (
        released(samples=2),
        ("update", "maintenance_ended:7", "P3", None, None),
    ),
    "the window's end with nothing critical left is the clear": (
        released(samples=None),
        ("clear", "maintenance_ended:7", "P3", None, None),
    ),
    "after the window its samples still do not open a ticket": (
        held(samples=None, raw=2, covering=None),
        ("suppressed", "maintenance:7", "P3", "open", None),
    ),
    "after the window samples outside it open as usual": (
        held(samples=2, raw=3, covering=None),
        ("open", "critical", "P3", None, None),
    ),
}


@pytest.mark.parametrize(
    ("entity", "expected"), list(MAINTENANCE_CASES.values()), ids=list(MAINTENANCE_CASES)
)
def test_maintenance_decision(
    entity: EntityFacts, expected: tuple[str, str, str, str | None, int | None] | None
) -> None:
    """Each row: an entity touched by a maintenance window and what the rules do with it."""
    decisions = decide([entity], spec=SNR, rules=RULES)
    if expected is None:
        assert decisions == []
        return
    [d] = decisions
    held_back = d.held.action if d.held is not None else None
    assert (d.action, d.reason, d.priority, held_back, d.held_by) == expected


def test_suppressed_decisions_are_not_counted_as_tickets() -> None:
    """A held-back open counts neither as a ticket change nor as a critical entry."""
    decisions = decide([held(samples=None, raw=2)], spec=SNR, rules=RULES)
    counts, critical = tally(decisions)
    assert counts.model_dump() == {"opened": 0, "updated": 0, "cleared": 0, "unchanged": 0}
    assert critical == 0
