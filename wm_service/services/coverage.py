"""Maintenance windows in time and in the network: which windows cover an element, and when.

Pure functions over `Window` values (loaded by services/maintenance.py): the occurrences of a
maybe recurring window, the windows whose scope matches a located entity, and the entity's
critical-sample statistics once the samples inside its windows are left out. The lifecycle
rules (services/lifecycle.py) take the result as facts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr

from wm_service.services.critical import WindowStats
from wm_service.services.ticket_document import Place

SCOPE_FIELDS = ("market", "hub", "ccap", "service_group", "entity_id")
MAX_DURATION = timedelta(days=7)
# The RRULE subset operators use for planned work: daily or weekly nights, maybe bounded.
_RULE_PARTS = {"FREQ", "INTERVAL", "BYDAY", "UNTIL", "COUNT"}
_FREQUENCIES = {"DAILY", "WEEKLY"}


@dataclass(frozen=True, slots=True)
class Window:
    """One maintenance window as the rules need it (the row of maintenance_window)."""

    id: int
    market: str | None
    hub: str | None
    ccap: str | None
    service_group: str | None
    entity_id: str | None
    starts_at: datetime
    ends_at: datetime
    recurrence: str | None
    timezone: str
    ended_at: datetime | None = None
    reason: str = ""
    change_ref: str | None = None

    def scope(self) -> tuple[str | None, ...]:
        return tuple(getattr(self, name) for name in SCOPE_FIELDS)


@dataclass(frozen=True, slots=True)
class Cover:
    """One occurrence of a window that covers an entity: [start, end)."""

    window_id: int
    start: datetime
    end: datetime

    def holds(self, at: datetime) -> bool:
        return self.start <= at < self.end


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValueError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _local(at: datetime, tz: ZoneInfo) -> datetime:
    """Wall-clock time in `tz`, naive: RRULEs recur in local time (23:00 stays 23:00)."""
    return at.astimezone(tz).replace(tzinfo=None)


def parse_rule(recurrence: str, *, starts_at: datetime, timezone: str) -> rrule:
    """The rule of a recurring window; ValueError saying what is wrong with it.

    Supported: FREQ=DAILY|WEEKLY with INTERVAL, BYDAY, COUNT and UNTIL (local wall time,
    e.g. UNTIL=20261231T235959). The first occurrence is the window's own start.
    """
    parts = dict(part.partition("=")[::2] for part in recurrence.upper().split(";") if part)
    unknown = set(parts) - _RULE_PARTS
    if unknown:
        raise ValueError(f"unsupported RRULE part(s): {', '.join(sorted(unknown))}")
    if parts.get("FREQ") not in _FREQUENCIES:
        raise ValueError("FREQ must be DAILY or WEEKLY")
    if parts.get("UNTIL", "").endswith("Z"):
        raise ValueError("UNTIL is local wall time in the window's time zone, without Z")
    rule = rrulestr(recurrence, dtstart=_local(starts_at, zone(timezone)))
    if not isinstance(rule, rrule):
        raise ValueError("one RRULE expected")
    return rule


def occurrences(window: Window, *, since: datetime, until: datetime) -> list[Cover]:
    """The window's occurrences overlapping [since, until], cut where it was ended early."""
    tz = zone(window.timezone)
    if window.recurrence is None:
        starts = [window.starts_at]
        length = window.ends_at - window.starts_at
    else:
        rule = parse_rule(window.recurrence, starts_at=window.starts_at, timezone=window.timezone)
        length = _local(window.ends_at, tz) - _local(window.starts_at, tz)
        local_starts = rule.between(_local(since, tz) - length, _local(until, tz), inc=True)
        starts = [s.replace(tzinfo=tz).astimezone(UTC) for s in local_starts]
    covers = []
    for start in starts:
        end = (start.astimezone(tz) + length).astimezone(UTC)
        if window.ended_at is not None:
            end = min(end, window.ended_at)
        if start < end and end > since and start <= until:
            covers.append(Cover(window.id, start, end))
    return covers


class Coverage:
    """The windows of one push, indexed by the scope fields each one sets.

    A window covers an entity when every scope field it sets equals the entity's (its place
    after the push's fields are merged over the inventory, and its entity id). Looking an
    entity up costs one dict probe per distinct combination of set fields, not one per window.
    """

    def __init__(self, windows: Iterable[Window], *, since: datetime, at: datetime) -> None:
        self._index: dict[tuple[bool, ...], dict[tuple[str | None, ...], list[Cover]]] = {}
        for window in windows:
            covers = occurrences(window, since=since, until=at)
            if not covers:
                continue
            scope = window.scope()
            signature = tuple(value is not None for value in scope)
            by_value = self._index.setdefault(signature, {})
            by_value.setdefault(scope, []).extend(covers)

    def __bool__(self) -> bool:
        return bool(self._index)

    def of(self, entity_id: str, place: Place) -> list[Cover]:
        values = (place.market, place.hub, place.ccap, place.service_group, entity_id)
        found: list[Cover] = []
        for signature, by_value in self._index.items():
            key = tuple(v if s else None for v, s in zip(values, signature, strict=True))
            found.extend(by_value.get(key, ()))
        return found


def covering(covers: Iterable[Cover], at: datetime) -> int | None:
    """The lowest id of the windows covering the instant `at`, if any."""
    return min((c.window_id for c in covers if c.holds(at)), default=None)


def stats_outside(
    samples: Iterable[tuple[datetime, float]], covers: list[Cover], *, lower_is_worse: bool
) -> tuple[WindowStats | None, int | None]:
    """Statistics of the samples outside every cover, and a window that held some back."""
    kept: list[tuple[datetime, float]] = []
    excluded_by: int | None = None
    for at, value in samples:
        inside = next((c.window_id for c in covers if c.holds(at)), None)
        if inside is None:
            kept.append((at, value))
        elif excluded_by is None:
            excluded_by = inside
    if not kept:
        return None, excluded_by
    values = [value for _, value in kept]
    stamps = [at for at, _ in kept]
    worst = min(values) if lower_is_worse else max(values)
    return WindowStats(len(kept), min(stamps), max(stamps), worst), excluded_by
