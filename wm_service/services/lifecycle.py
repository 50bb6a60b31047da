"""The lifecycle rules: what one push does to each entity's ticket, and why.

A pure function over what ingestion.py has read in the push's transaction (window statistics,
open tickets, places, maintenance windows, rules); ingestion writes the decisions. Every rule
lives here, beside its table of cases (test_lifecycle_rules.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Literal

import msgspec

from wm_service.kinds import KindSpec
from wm_service.schemas import RuleSettings, TicketCounts
from wm_service.services.critical import WindowStats, is_critical
from wm_service.services.ticket_document import Place

Action = Literal["open", "update", "clear", "unchanged", "suppressed"]
# Written into the ticket document's `reason` (ticketing_common/contract.py): one of
# critical, new_samples, priority_raised, recovered, no_change, or maintenance:<window id>
# and maintenance_ended:<window id> for the notes of a window's start and end.
Reason = str

PRIORITY_RANK = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}
# Priority bands (an assumption, CONTEXT.md §3): subscribers affected, and the kind's own
# P1 rule (KindSpec.p1_worst_value: SNR below 20 dB).
P1_SUBSCRIBERS, P2_SUBSCRIBERS, P3_SUBSCRIBERS = 200, 65, 10


class OpenTicket(msgspec.Struct, frozen=True):
    id: uuid.UUID
    revision: int
    priority: str
    held_by: int | None = None  # the window whose start was noted on it, until its end is


class Maintenance(msgspec.Struct, frozen=True):
    """How maintenance windows touch one entity at this push (None when none does)."""

    covering: int | None  # a window covering the entity now
    excluded_by: int | None  # a window whose samples were left out of `EntityFacts.stats`
    raw_stats: WindowStats | None  # the statistics had no window left samples out


class EntityFacts(msgspec.Struct, frozen=True):
    """What the push knows about one entity present in it, as the rules need it."""

    entity_id: str
    stats: WindowStats | None  # its critical samples in the window, if any
    ticket: OpenTicket | None  # its open ticket, if any
    place: Place
    new_samples: bool  # this push stored critical samples not seen before
    maintenance: Maintenance | None = None


class Decision(msgspec.Struct, frozen=True):
    """What happens to one entity's ticket, and why."""

    entity_id: str
    action: Action
    reason: Reason
    priority: str
    critical: bool  # the entity is critical at T (counted as a critical entry)
    stats: WindowStats | None  # None for a clear: nothing critical is left to describe
    ticket: OpenTicket | None  # the open ticket it revises; None for an open
    held_by: int | None = None  # the window noted on the ticket after this decision
    held: Decision | None = None  # for "suppressed": what the window held back
    # For a service-group ticket: its critical channels and their worst values.
    channels: tuple[tuple[str, float | None], ...] | None = None


def priority(spec: KindSpec, *, subscribers: int | None, worst_value: float | None) -> str:
    """P1: ≥ 200 subscribers or past the kind's P1 value; P2 65-199; P3 10-64; else P4."""
    affected = subscribers or 0
    past_p1_value = (
        spec.p1_worst_value is not None
        and worst_value is not None
        and spec.is_past(worst_value, spec.p1_worst_value)
    )
    if affected >= P1_SUBSCRIBERS or past_p1_value:
        return "P1"
    if affected >= P2_SUBSCRIBERS:
        return "P2"
    if affected >= P3_SUBSCRIBERS:
        return "P3"
    return "P4"


def is_worse(new: str, old: str) -> bool:
    return PRIORITY_RANK[new] < PRIORITY_RANK[old]


def decide(
    entities: Iterable[EntityFacts], *, spec: KindSpec, rules: RuleSettings
) -> list[Decision]:
    """One decision per entity that is critical or has an open ticket (others need none)."""
    decisions = []
    for facts in entities:
        decision = _decide_one(facts, spec=spec, rules=rules)
        if decision is not None:
            decisions.append(decision)
    return decisions


def _decide_one(facts: EntityFacts, *, spec: KindSpec, rules: RuleSettings) -> Decision | None:
    """The plain rules, then what maintenance windows change about them."""
    plain = _decide_plain(facts, facts.stats, spec=spec, rules=rules)
    ticket, window = facts.ticket, facts.maintenance
    if window is not None and window.covering is not None:
        raw = _decide_plain(facts, window.raw_stats, spec=spec, rules=rules)
        return _held(facts, raw, window.covering)
    if ticket is not None and ticket.held_by is not None:
        return _released(plain, ticket.held_by)
    if window is not None and window.excluded_by is not None and not _changes(plain):
        raw = _decide_plain(facts, window.raw_stats, spec=spec, rules=rules)
        if _changes(raw):
            # The window is over, but its samples still do not count: say what they would do.
            assert raw is not None
            return _suppressed(facts, raw, window.excluded_by)
    return plain


def _changes(decision: Decision | None) -> bool:
    return decision is not None and decision.action in ("open", "update", "clear")


def _held(facts: EntityFacts, raw: Decision | None, window_id: int) -> Decision | None:
    """Covered by a window: one note when it starts; nothing else is opened, updated, cleared."""
    ticket = facts.ticket
    reason = f"maintenance:{window_id}"
    if ticket is not None and ticket.held_by is None:
        stats = raw.stats if raw is not None and raw.stats is not None else facts.stats
        critical = raw is not None and raw.critical
        return Decision(
            facts.entity_id, "update", reason, ticket.priority, critical, stats, ticket, window_id
        )
    if _changes(raw):
        assert raw is not None
        return _suppressed(facts, raw, window_id)
    if ticket is None:
        return None
    return Decision(
        facts.entity_id, "unchanged", reason, ticket.priority, False, None, ticket, ticket.held_by
    )


def _suppressed(facts: EntityFacts, raw: Decision, window_id: int) -> Decision:
    return Decision(
        facts.entity_id,
        "suppressed",
        f"maintenance:{window_id}",
        raw.priority,
        False,
        raw.stats,
        facts.ticket,
        facts.ticket.held_by if facts.ticket else None,
        held=raw,
    )


def _released(plain: Decision | None, window_id: int) -> Decision:
    """The window noted on the ticket no longer covers it: one note, or the clear itself."""
    assert plain is not None and plain.ticket is not None  # an open ticket always gets one
    action: Action = "clear" if plain.action == "clear" else "update"
    return Decision(
        plain.entity_id,
        action,
        f"maintenance_ended:{window_id}",
        plain.priority,
        plain.critical,
        plain.stats,
        plain.ticket,
    )


def _decide_plain(
    facts: EntityFacts, stats: WindowStats | None, *, spec: KindSpec, rules: RuleSettings
) -> Decision | None:
    ticket = facts.ticket
    if not is_critical(stats, rules):
        if ticket is None:
            return None
        return Decision(facts.entity_id, "clear", "recovered", ticket.priority, False, None, ticket)
    assert stats is not None  # is_critical says so
    wanted = priority(spec, subscribers=facts.place.subscribers, worst_value=stats.worst_value)
    if ticket is None:
        return Decision(facts.entity_id, "open", "critical", wanted, True, stats, None)
    # Priority only ever rises within one ticket: a smaller audience later does not
    # downgrade work already dispatched.
    if is_worse(wanted, ticket.priority):
        return Decision(facts.entity_id, "update", "priority_raised", wanted, True, stats, ticket)
    if facts.new_samples:
        return Decision(
            facts.entity_id, "update", "new_samples", ticket.priority, True, stats, ticket
        )
    return Decision(facts.entity_id, "unchanged", "no_change", ticket.priority, True, stats, ticket)


def tally(decisions: Iterable[Decision]) -> tuple[TicketCounts, int]:
    """Tickets opened/updated/cleared/unchanged, and how many entities were critical."""
    counts = {"opened": 0, "updated": 0, "cleared": 0, "unchanged": 0}
    critical = 0
    for decision in decisions:
        if decision.action == "suppressed":
            continue  # counted apart: PushResult.suppressed
        counts[_COUNTED_AS[decision.action]] += 1
        critical += decision.critical
    return TicketCounts(**counts), critical


_COUNTED_AS: dict[str, str] = {
    "open": "opened",
    "update": "updated",
    "clear": "cleared",
    "unchanged": "unchanged",
}
