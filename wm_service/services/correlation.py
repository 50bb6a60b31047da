"""Service-group correlation: one ticket per fibre node whose upstream channels fail together.

A pure function over the channel decisions of one push (services/lifecycle.py) and the open
group tickets: it opens, grows, shrinks and clears the group tickets, and takes the place of
the channel decisions of the grouped channels. Table of cases: test_correlation_rules.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from msgspec.structs import replace

from wm_service.kinds import KindSpec
from wm_service.schemas import RuleSettings
from wm_service.services.critical import WindowStats, is_critical
from wm_service.services.lifecycle import (
    Action,
    Decision,
    EntityFacts,
    OpenTicket,
    is_worse,
    priority,
)
from wm_service.services.ticket_document import Place, dedup_key

Channels = tuple[tuple[str, float | None], ...]


@dataclass(frozen=True, slots=True)
class GroupTicket:
    """An open service-group ticket, the channels its latest revision listed, its place."""

    ticket: OpenTicket
    channels: dict[str, float | None]
    place: Place


@dataclass
class Correlated:
    """The channel decisions that remain, the group decisions, and the groups' places."""

    channels: list[Decision]
    groups: list[Decision] = field(default_factory=list)
    places: dict[str, Place] = field(default_factory=dict)


def group_key(place: Place) -> str | None:
    """The group's entity id, market/hub/ccap/service_group; None without a service group."""
    if place.service_group is None:
        return None
    parts = (place.market, place.hub, place.ccap, place.service_group)
    return "/".join(part or "?" for part in parts)


def correlate(
    entities: Iterable[EntityFacts],
    decisions: list[Decision],
    *,
    open_groups: dict[str, GroupTicket],
    in_push: set[str],
    group_subscribers: dict[str, int],
    spec: KindSpec,
    rules: RuleSettings,
    window_over: Callable[[str, Place], int | None] = lambda key, place: None,
) -> Correlated:
    """Group the channels of each service group present in the push (absent ones are left).

    A group ticket opens when at least `group_min_channels` channels (not covered by a
    maintenance window) are critical; while it is open every critical channel joins it, and
    it clears when none of its channels is critical. A grouped channel opens no ticket of
    its own, and its open one is cleared with reason grouped:<group dedup key>.
    `in_push`: the channels listed on open group tickets that this push carries;
    `window_over(key, place)`: the maintenance window covering a group now, if any (an open
    group ticket then gets the same start and end notes as any ticket).
    """
    members: dict[str, list[EntityFacts]] = {}
    for facts in entities:
        key = group_key(facts.place)
        if key is not None:
            members.setdefault(key, []).append(facts)
    out = Correlated(channels=[])
    by_entity: dict[str, Decision | None] = {d.entity_id: d for d in decisions}
    listed_here = {k for k, g in open_groups.items() if any(c in in_push for c in g.channels)}
    for key in members.keys() | listed_here:
        present = members.get(key, [])
        group = _decide_group(
            key, present, open_groups.get(key), in_push, group_subscribers, spec, rules
        )
        if group is None:
            continue
        decision, place, grouped = group
        out.places[key] = place
        out.groups.append(_windowed(decision, window_over(key, place), present, spec))
        for entity_id in grouped:
            by_entity[entity_id] = _grouped(by_entity.get(entity_id), dedup_key(spec.name, key))
    out.channels = [d for d in by_entity.values() if d is not None]
    return out


def _grouped(channel: Decision | None, group: str) -> Decision | None:
    """A grouped channel: no ticket of its own; its open one is cleared naming the group."""
    if channel is None or channel.ticket is None:
        return None
    if channel.action == "suppressed" or channel.ticket.held_by is not None:
        return channel  # a maintenance window holds it: the window's rules stay in force
    # The channel's statistics stay: a clear of a still-critical channel is not a recovery.
    return replace(channel, action="clear", reason=f"grouped:{group}", critical=True)


def _windowed(
    decision: Decision, window: int | None, present: list[EntityFacts], spec: KindSpec
) -> Decision:
    """An open group ticket under a window: one note when it starts, one when it ends."""
    ticket = decision.ticket
    if ticket is None:
        return decision
    if window is not None:
        if ticket.held_by is not None:
            return replace(decision, action="unchanged", held_by=ticket.held_by)
        raw = [replace(e, stats=e.maintenance.raw_stats) if e.maintenance else e for e in present]
        return replace(
            decision,
            action="update",
            reason=f"maintenance:{window}",
            priority=ticket.priority,
            stats=decision.stats or _group_stats(raw, spec),
            held_by=window,
        )
    if ticket.held_by is None:
        return decision
    action: Action = "clear" if decision.action == "clear" else "update"
    return replace(decision, action=action, reason=f"maintenance_ended:{ticket.held_by}")


def _decide_group(
    key: str,
    present: list[EntityFacts],
    open_group: GroupTicket | None,
    in_push: set[str],
    group_subscribers: dict[str, int],
    spec: KindSpec,
    rules: RuleSettings,
) -> tuple[Decision, Place, set[str]] | None:
    covered = {e.entity_id for e in present if e.maintenance and e.maintenance.covering is not None}
    critical = [e for e in present if e.entity_id not in covered and is_critical(e.stats, rules)]
    if open_group is None and (
        rules.group_min_channels == 0 or len(critical) < rules.group_min_channels
    ):
        return None
    listed = open_group.channels if open_group else {}
    present_ids = in_push | {e.entity_id for e in present}
    # Listed channels absent from the push, or held by a window, stay as they were.
    kept = {c: w for c, w in listed.items() if c not in present_ids or c in covered}
    channels = kept | {e.entity_id: e.stats.worst_value for e in critical if e.stats}
    if present or open_group is None:
        place = _group_place(present, group_subscribers)
    else:
        place = open_group.place
    listing: Channels = tuple(sorted(channels.items()))
    decision = _group_decision(key, critical, listing, open_group, place, spec)
    return decision, place, {e.entity_id for e in critical}


def _group_place(present: list[EntityFacts], group_subscribers: dict[str, int]) -> Place:
    """The group's place; its subscribers from the inventory, else its largest channel's.

    Bonded upstream channels share the same modems: channel counts are never summed.
    """
    first = present[0].place
    group = first.service_group or ""
    known = [e.place.subscribers for e in present if e.place.subscribers is not None]
    subscribers = group_subscribers.get(group, max(known, default=None))
    return Place(first.market, first.hub, first.ccap, first.service_group, None, subscribers)


def _group_stats(critical: list[EntityFacts], spec: KindSpec) -> WindowStats | None:
    stats = [e.stats for e in critical if e.stats is not None]
    if not stats:
        return None
    pick = min if spec.lower_is_worse else max
    return WindowStats(
        sum(s.count for s in stats),
        min(s.first_at for s in stats),
        max(s.last_at for s in stats),
        pick(s.worst_value for s in stats),
    )


def _group_decision(
    key: str,
    critical: list[EntityFacts],
    channels: Channels,
    open_group: GroupTicket | None,
    place: Place,
    spec: KindSpec,
) -> Decision:
    stats = _group_stats(critical, spec)
    ticket = open_group.ticket if open_group else None
    if ticket is None:
        assert stats is not None  # a group opens only with critical channels
        wanted = priority(spec, subscribers=place.subscribers, worst_value=stats.worst_value)
        return Decision(key, "open", "critical", wanted, True, stats, None, channels=channels)
    if not channels:
        return Decision(key, "clear", "recovered", ticket.priority, False, None, ticket)
    assert open_group is not None
    action, reason, level = _group_change(critical, channels, open_group, stats, place, spec)
    return Decision(key, action, reason, level, True, stats, ticket, channels=channels)


def _group_change(
    critical: list[EntityFacts],
    channels: Channels,
    open_group: GroupTicket,
    stats: WindowStats | None,
    place: Place,
    spec: KindSpec,
) -> tuple[Action, str, str]:
    """Update or not, why, and at which priority (it only ever rises)."""
    current = open_group.ticket.priority
    if stats is None:
        # Only channels absent from the push or held by a window are left: wait for them.
        return "unchanged", "no_change", current
    wanted = priority(spec, subscribers=place.subscribers, worst_value=stats.worst_value)
    if is_worse(wanted, current):
        return "update", "priority_raised", wanted
    if dict(channels) != open_group.channels:
        return "update", "channels_changed", current
    if any(e.new_samples for e in critical):
        return "update", "new_samples", current
    return "unchanged", "no_change", current


def note(reason: str) -> tuple[str, str] | None:
    """(title, text) of the note clearing a grouped channel's own ticket, in Spanish."""
    kind, _, group = reason.partition(":")
    if kind != "grouped":
        return None
    return "Agrupado", (
        f"Este canal se atiende en el ticket del grupo de servicio {group}: una sola visita "
        "de campo para todos sus canales críticos. Este ticket no recibirá más "
        "actualizaciones."
    )
