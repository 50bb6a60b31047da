"""Maintenance windows in time and scope, without a database (services/coverage.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wm_service.services.coverage import (
    Coverage,
    Window,
    covering,
    occurrences,
    parse_rule,
    stats_outside,
)
from wm_service.services.ticket_document import Place

MX = "America/Mexico_City"  # UTC-6, no DST since 2022
H = timedelta(hours=1)
PLACE = Place("Monterrey", "MTY01", "CCAP02", "N0423", "US-1", 40)


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def window(**fields: object) -> Window:
    values: dict[str, object] = {
        "id": 1,
        "market": None,
        "hub": None,
        "ccap": None,
        "service_group": None,
        "entity_id": None,
        "starts_at": utc(1, 10),
        "ends_at": utc(1, 12),
        "recurrence": None,
        "timezone": MX,
    }
    return Window(**(values | fields))  # type: ignore[arg-type]


# Daily 23:00-03:00 Mexico City = 05:00-09:00 UTC, first night starting 1 Dec 23:00 local.
NIGHTLY = window(
    hub="MTY01",
    starts_at=datetime(2026, 12, 1, 23, 0, tzinfo=UTC) + 6 * H,
    ends_at=datetime(2026, 12, 2, 3, 0, tzinfo=UTC) + 6 * H,
    recurrence="FREQ=DAILY",
)

# (window, UTC instant, covered?)
INSTANTS = {
    "nightly: 04:59 UTC is 22:59 local, before the first night": (NIGHTLY, utc(2, 4, 59), False),
    "nightly: 05:00 UTC is 23:00 local, the start": (NIGHTLY, utc(2, 5), True),
    "nightly: 08:59 UTC is 02:59 local, inside": (NIGHTLY, utc(2, 8, 59), True),
    "nightly: 09:00 UTC is 03:00 local, the end is outside": (NIGHTLY, utc(2, 9), False),
    "nightly: the fifth night at 07:00 UTC": (NIGHTLY, utc(6, 7), True),
    "nightly: noon UTC is never covered": (NIGHTLY, utc(6, 12), False),
    "one-off: inside": (window(), utc(1, 11), True),
    "one-off: after": (window(), utc(1, 12), False),
    "ended early: after the end it covers no more": (
        window(ended_at=utc(1, 11)),
        utc(1, 11, 30),
        False,
    ),
    "ended early: before the end it did": (window(ended_at=utc(1, 11)), utc(1, 10, 30), True),
    "weekly on Tuesdays: 1 Dec 2026 is a Tuesday": (
        window(recurrence="FREQ=WEEKLY;BYDAY=TU"),
        utc(8, 11),
        True,
    ),
    "weekly on Tuesdays: not on Wednesday": (
        window(recurrence="FREQ=WEEKLY;BYDAY=TU"),
        utc(9, 11),
        False,
    ),
    "daily until a local date: not after it": (
        window(recurrence="FREQ=DAILY;UNTIL=20261203T235959"),
        utc(4, 11),
        False,
    ),
}


@pytest.mark.parametrize(("win", "at", "expected"), list(INSTANTS.values()), ids=list(INSTANTS))
def test_window_covers_an_instant(win: Window, at: datetime, expected: bool) -> None:
    """Each row: a window, a UTC instant, and whether the window covers it then."""
    covers = occurrences(win, since=at - 24 * H, until=at)
    assert (covering(covers, at) is not None) is expected


# (window scope, covers the entity N0423 / US-1 in CCAP02, hub MTY01, Monterrey?)
SCOPES = {
    "its market": ({"market": "Monterrey"}, True),
    "its hub and CCAP": ({"hub": "MTY01", "ccap": "CCAP02"}, True),
    "its hub but another CCAP": ({"hub": "MTY01", "ccap": "CCAP09"}, False),
    "its service group": ({"service_group": "N0423"}, True),
    "the entity itself": ({"entity_id": "E1"}, True),
    "another entity": ({"entity_id": "E2"}, False),
    "another market": ({"market": "Guadalajara"}, False),
}


@pytest.mark.parametrize(("scope", "expected"), list(SCOPES.values()), ids=list(SCOPES))
def test_window_scope_matches_the_located_entity(scope: dict[str, str], expected: bool) -> None:
    """Every scope field a window sets must equal the entity's; unset ones match anything."""
    coverage = Coverage([window(**scope)], since=utc(1, 0), at=utc(1, 11))
    assert bool(coverage.of("E1", PLACE)) is expected


@pytest.mark.parametrize(
    "rule",
    ["FREQ=MONTHLY", "FREQ=DAILY;BYHOUR=3", "FREQ=DAILY;UNTIL=20261231T000000Z", "nonsense"],
)
def test_unsupported_rules_are_refused(rule: str) -> None:
    """Only daily or weekly rules, with local UNTIL, are accepted."""
    with pytest.raises(ValueError):
        parse_rule(rule, starts_at=utc(1, 10), timezone=MX)


def test_samples_inside_a_cover_are_left_out_of_the_statistics() -> None:
    """The statistics keep the samples outside the covers and name the window that held some."""
    covers = occurrences(window(id=7), since=utc(1, 0), until=utc(1, 13))
    samples = [(utc(1, 9), 22.0), (utc(1, 10, 30), 15.0), (utc(1, 12), 24.0)]
    stats, excluded_by = stats_outside(samples, covers, lower_is_worse=True)
    assert stats is not None
    assert (stats.count, stats.worst_value, excluded_by) == (2, 22.0, 7)
    assert stats_outside(samples[1:2], covers, lower_is_worse=True) == (None, 7)
