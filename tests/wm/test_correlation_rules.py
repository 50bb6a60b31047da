"""Service-group correlation as a table: one row per case, no database (correlation.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from wm_service import kinds
from wm_service.services.correlation import GroupTicket, correlate, group_key
from wm_service.services.critical import WindowStats
from wm_service.services.lifecycle import EntityFacts, Maintenance, OpenTicket, decide
from wm_service.services.settings import default_rules
from wm_service.services.ticket_document import Place

AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SNR = kinds.SNR_UPSTREAM
GROUP = kinds.SNR_SERVICE_GROUP
KEY = "Monterrey/MTY01/CCAP02/N1"
GROUP_KEY = f"snr-service-group:{KEY}"


def channel(
    name: str,
    *,
    critical: bool = True,
    worst: float = 23.0,
    ticket: bool = False,
    covered: bool = False,
    new: bool = True,
    group: str | None = "N1",
    subscribers: int = 30,
) -> EntityFacts:
    stats = WindowStats(2, AT, AT, worst) if critical else None
    place = Place("Monterrey", "MTY01", "CCAP02", group, name, subscribers)
    own = OpenTicket(uuid.uuid4(), 1, "P3") if ticket else None
    maintenance = Maintenance(9, None, stats) if covered else None
    return EntityFacts(name, None if covered else stats, own, place, new, maintenance)


def open_group(
    *channels: str, priority: str = "P3", held_by: int | None = None
) -> dict[str, GroupTicket]:
    place = Place("Monterrey", "MTY01", "CCAP02", "N1", None, 30)
    ticket = OpenTicket(uuid.UUID(int=7), 2, priority, held_by)
    return {KEY: GroupTicket(ticket, dict.fromkeys(channels, 23.0), place)}


def run(
    entities: list[EntityFacts],
    *,
    threshold: int = 3,
    groups: dict[str, GroupTicket] | None = None,
    subscribers: dict[str, int] | None = None,
    in_push: set[str] | None = None,
    window: int | None = None,
) -> tuple[list[tuple[str, str, str]], list[tuple[Any, ...]]]:
    rules = default_rules().model_copy(update={"group_min_channels": threshold})
    decisions = decide(entities, spec=SNR, rules=rules)
    out = correlate(
        entities,
        decisions,
        open_groups=groups or {},
        in_push=in_push or set(),
        group_subscribers=subscribers or {},
        spec=GROUP,
        rules=rules,
        window_over=lambda key, place: window,
    )
    channels = sorted((d.entity_id, d.action, d.reason) for d in out.channels)
    listed = [
        (d.action, d.reason, d.priority, tuple(c for c, _ in d.channels or ())) for d in out.groups
    ]
    return channels, listed


ABC = [channel("A"), channel("B"), channel("C")]


def opens(*names: str) -> list[tuple[str, str, str]]:
    return [(n, "open", "critical") for n in names]


# (inputs of run(), expected (channel decisions, group decisions))
CASES: dict[str, tuple[dict[str, Any], tuple[list[Any], list[Any]]]] = {
    "off by default: three critical channels open three tickets": (
        {"entities": ABC, "threshold": 0},
        (opens("A", "B", "C"), []),
    ),
    "below the threshold: channel tickets as usual": (
        {"entities": ABC[:2]},
        (opens("A", "B"), []),
    ),
    "at the threshold: one group ticket instead of three": (
        {"entities": ABC},
        ([], [("open", "critical", "P3", ("A", "B", "C"))]),
    ),
    "an open channel ticket is cleared naming the group": (
        {"entities": [channel("A", ticket=True), *ABC[1:]]},
        ([("A", "clear", f"grouped:{GROUP_KEY}")], [("open", "critical", "P3", ("A", "B", "C"))]),
    ),
    "a channel under a window does not count": (
        {"entities": [channel("A", covered=True), *ABC[1:]]},
        ([("A", "suppressed", "maintenance:9"), *opens("B", "C")], []),
    ),
    "entries without a service group are never grouped": (
        {"entities": [channel(n, group=None) for n in "ABC"]},
        (opens("A", "B", "C"), []),
    ),
    "a channel turning critical joins the open group": (
        {"entities": [*ABC, channel("D")], "groups": open_group("A", "B", "C")},
        ([], [("update", "channels_changed", "P3", ("A", "B", "C", "D"))]),
    ),
    "below the threshold the group stays open with the critical ones": (
        {
            "entities": [channel("A")],
            "groups": open_group("A", "B", "C"),
            "in_push": {"A", "B", "C"},
        },
        ([], [("update", "channels_changed", "P3", ("A",))]),
    ),
    "the group clears when none of its channels is critical": (
        {"entities": [], "groups": open_group("A", "B"), "in_push": {"A", "B"}},
        ([], [("clear", "recovered", "P3", ())]),
    ),
    "a listed channel absent from the push stays listed": (
        {"entities": [channel("A", new=False)], "groups": open_group("A", "B")},
        ([], [("unchanged", "no_change", "P3", ("A", "B"))]),
    ),
    "new samples on the same channels update the group": (
        {"entities": ABC, "groups": open_group("A", "B", "C")},
        ([], [("update", "new_samples", "P3", ("A", "B", "C"))]),
    ),
    "priority from the group's subscribers in the inventory": (
        {"entities": ABC, "subscribers": {"N1": 150}},
        ([], [("open", "critical", "P2", ("A", "B", "C"))]),
    ),
    "without inventory the largest channel count, never the sum": (
        {"entities": [channel(n, subscribers=60) for n in "ABC"]},
        ([], [("open", "critical", "P3", ("A", "B", "C"))]),
    ),
    "a window starting over an open group adds one note": (
        {
            "entities": [channel(n, covered=True) for n in "ABC"],
            "groups": open_group("A", "B", "C"),
            "window": 9,
        },
        (
            [(n, "suppressed", "maintenance:9") for n in "ABC"],
            [("update", "maintenance:9", "P3", ("A", "B", "C"))],
        ),
    ),
    "a noted group under its window stays as it is": (
        {
            "entities": [channel(n, covered=True) for n in "ABC"],
            "groups": open_group("A", "B", "C", held_by=9),
            "window": 9,
        },
        (
            [(n, "suppressed", "maintenance:9") for n in "ABC"],
            [("unchanged", "no_change", "P3", ("A", "B", "C"))],
        ),
    ),
    "the window's end is one note on the group": (
        {"entities": ABC, "groups": open_group("A", "B", "C", held_by=9)},
        ([], [("update", "maintenance_ended:9", "P3", ("A", "B", "C"))]),
    ),
    "the worst SNR below 20 dB makes the group P1": (
        {"entities": [channel("A", worst=19.0), *ABC[1:]]},
        ([], [("open", "critical", "P1", ("A", "B", "C"))]),
    ),
}


@pytest.mark.parametrize(("inputs", "expected"), list(CASES.values()), ids=list(CASES))
def test_correlation(inputs: dict[str, Any], expected: tuple[list[Any], list[Any]]) -> None:
    """Each row: the channels of one push and the channel and group decisions that result."""
    assert run(**inputs) == expected


def test_group_key_names_the_place_and_needs_a_service_group() -> None:
    """market/hub/ccap/service_group, '?' for an unknown part; None without a group."""
    assert group_key(Place("M", None, "C", "N1", None, None)) == "M/?/C/N1"
    assert group_key(Place("M", "H", "C", None, None, None)) is None
