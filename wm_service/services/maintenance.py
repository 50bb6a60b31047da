"""Maintenance windows: create, import, change, end, delete, list; and what a push reads of them.

Operators declare planned work here (routes/maintenance.py, `ticketing maintenance`); each
push loads the windows that can matter to it (`load_for_push`) and the lifecycle rules decide
with them (services/coverage.py, services/lifecycle.py). Nothing is deleted for real: a
deleted window stops counting from the next push, the suppressions it recorded stay listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import ValidationError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.cursor import KeysetCursor
from ticketing_common.errors import Conflict, ErrorDetail, NotFound, ValidationFailed
from wm_service.models import (
    AggregationPush,
    MaintenanceSuppression,
    MaintenanceWindow,
    TopologyElement,
)
from wm_service.schemas import (
    MaintenanceWindowBase,
    MaintenanceWindowCreate,
    MaintenanceWindowPublic,
    MaintenanceWindowUpdate,
    SuppressedPage,
    SuppressedPublic,
)
from wm_service.services.coverage import (
    MAX_DURATION,
    SCOPE_FIELDS,
    Window,
    covering,
    occurrences,
    parse_rule,
    zone,
)
from wm_service.services.csv_rows import parse_csv_rows

CSV_COLUMNS = (
    *SCOPE_FIELDS,
    *("starts_at", "ends_at", "recurrence", "timezone", "reason", "change_ref"),
)
# Checked against the inventory when one is loaded: a misspelt market would cover nothing
# and let the work's tickets reach the field. Service groups and entities are not checked:
# pushes may carry elements the inventory does not list yet.
_CHECKED_PLACES = ("market", "hub", "ccap")
SUPPRESSED_CURSOR = KeysetCursor(int)
_COLUMNS = tuple(MaintenanceWindow.model_fields)


def utcnow() -> datetime:
    return datetime.now(UTC)


def window_of(row: Mapping[str, Any]) -> Window:
    """The rules' view of a maintenance_window row (a model's dump or an asyncpg record)."""
    names = (*SCOPE_FIELDS, "starts_at", "ends_at", "recurrence", "timezone", "ended_at")
    return Window(
        id=row["id"],
        **{name: row[name] for name in names},
        reason=row["reason"],
        change_ref=row["change_ref"],
    )


def is_active(row: MaintenanceWindow, now: datetime) -> bool:
    if row.deleted_at is not None:
        return False
    window = window_of({name: getattr(row, name, None) for name in _COLUMNS})
    return covering(occurrences(window, since=now, until=now), now) is not None


def _public(row: MaintenanceWindow, now: datetime) -> MaintenanceWindowPublic:
    return MaintenanceWindowPublic.model_validate(
        {**row.model_dump(), "active": is_active(row, now)}
    )


def _time_problems(window: MaintenanceWindowBase) -> list[ErrorDetail]:
    problems = []
    length = window.ends_at - window.starts_at
    if length.total_seconds() <= 0:
        problems.append(ErrorDetail("ends_at", "must be after starts_at"))
    elif length > MAX_DURATION:
        problems.append(ErrorDetail("ends_at", "one occurrence lasts at most 7 days"))
    try:
        zone(window.timezone)
    except ValueError as exc:
        return [*problems, ErrorDetail("timezone", str(exc))]
    if window.recurrence is not None:
        try:
            parse_rule(window.recurrence, starts_at=window.starts_at, timezone=window.timezone)
        except ValueError as exc:
            problems.append(ErrorDetail("recurrence", f"invalid RRULE: {exc}"))
    return problems


async def _place_problems(
    session: AsyncSession, window: MaintenanceWindowBase
) -> list[ErrorDetail]:
    """Market, hub and CCAP must exist in the inventory, when one is loaded."""
    loaded = (await session.exec(select(TopologyElement.element_id).limit(1))).first()
    if loaded is None:
        return []
    problems = []
    for name in _CHECKED_PLACES:
        value = getattr(window, name)
        if value is None:
            continue
        column = col(getattr(TopologyElement, name))
        found = (await session.exec(select(column).where(column == value).limit(1))).first()
        if found is None:
            problems.append(ErrorDetail(name, f"unknown {name} {value!r} in the topology"))
    return problems


async def check(session: AsyncSession, window: MaintenanceWindowBase, *, at: str = "") -> None:
    """422 naming every bad field (prefixed with `at`, e.g. `line[3].`), or nothing."""
    problems = []
    if all(getattr(window, name) is None for name in SCOPE_FIELDS):
        problems.append(ErrorDetail("scope", "give at least one of " + ", ".join(SCOPE_FIELDS)))
    problems += _time_problems(window)
    problems += await _place_problems(session, window)
    if problems:
        details = [ErrorDetail(at + p.field, p.message) for p in problems]
        summary = "; ".join(f"{d.field}: {d.message}" for d in details[:5])
        raise ValidationFailed(f"invalid maintenance window: {summary}", details=details)


def _new_row(data: MaintenanceWindowCreate, now: datetime) -> MaintenanceWindow:
    fields = data.model_dump()
    return MaintenanceWindow(**fields, updated_by=data.created_by, created_at=now, updated_at=now)


async def create(
    session: AsyncSession, *, data: MaintenanceWindowCreate
) -> MaintenanceWindowPublic:
    await check(session, data)
    now = utcnow()
    row = _new_row(data, now)
    session.add(row)
    await session.flush()
    return _public(row, now)


def parse_csv(body: bytes | bytearray, *, created_by: str) -> list[MaintenanceWindowCreate]:
    return parse_csv_rows(
        body,
        model=MaintenanceWindowCreate,
        columns=CSV_COLUMNS,
        required=("starts_at", "ends_at", "reason"),
        what="maintenance",
        extra={"created_by": created_by},
    )


async def create_many(
    session: AsyncSession, *, windows: list[MaintenanceWindowCreate]
) -> list[MaintenanceWindowPublic]:
    """All or nothing: every window is checked (errors as line[N].field) before any is stored."""
    for line, data in enumerate(windows, start=2):  # line 1 is the CSV header
        await check(session, data, at=f"line[{line}].")
    now = utcnow()
    rows = [_new_row(data, now) for data in windows]
    session.add_all(rows)
    await session.flush()
    return [_public(row, now) for row in rows]


async def _get_row(session: AsyncSession, window_id: int) -> MaintenanceWindow:
    row = await session.get(MaintenanceWindow, window_id)
    if row is None:
        raise NotFound(f"no maintenance window {window_id}")
    return row


async def get(session: AsyncSession, *, window_id: int) -> MaintenanceWindowPublic:
    return _public(await _get_row(session, window_id), utcnow())


async def list_windows(
    session: AsyncSession, *, active: bool, include_deleted: bool, limit: int
) -> list[MaintenanceWindowPublic]:
    """Newest first; `active` keeps those covering their scope right now."""
    query = select(MaintenanceWindow).order_by(col(MaintenanceWindow.id).desc())
    if not include_deleted:
        query = query.where(col(MaintenanceWindow.deleted_at).is_(None))
    now = utcnow()
    rows = [row for row in (await session.exec(query)).all() if not active or is_active(row, now)]
    return [_public(row, now) for row in rows[:limit]]


async def update(
    session: AsyncSession, *, window_id: int, patch: MaintenanceWindowUpdate
) -> MaintenanceWindowPublic:
    """Apply a partial change, check the whole result, record who changed it and when."""
    row = await _live_row(session, window_id)
    change = patch.model_dump(exclude_unset=True)
    updated_by = change.pop("updated_by")
    fields = {name: getattr(row, name) for name in MaintenanceWindowBase.model_fields}
    try:
        candidate = MaintenanceWindowBase.model_validate({**fields, **change})
    except ValidationError as exc:
        details = [ErrorDetail(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
        raise ValidationFailed("invalid maintenance window", details=details) from exc
    await check(session, candidate)
    now = utcnow()
    for name, value in change.items():
        setattr(row, name, value)
    row.updated_at, row.updated_by = now, updated_by
    await session.flush()
    return _public(row, now)


async def _live_row(session: AsyncSession, window_id: int) -> MaintenanceWindow:
    row = await _get_row(session, window_id)
    if row.deleted_at is not None:
        raise Conflict(f"maintenance window {window_id} was deleted")
    return row


async def end(session: AsyncSession, *, window_id: int, ended_by: str) -> MaintenanceWindowPublic:
    """End now: no later occurrence; samples taken until now stay excluded."""
    row = await _live_row(session, window_id)
    if row.ended_at is not None:
        raise Conflict(f"maintenance window {window_id} was already ended at {row.ended_at}")
    now = utcnow()
    row.ended_at, row.updated_at, row.updated_by = now, now, ended_by
    await session.flush()
    return _public(row, now)


async def delete(session: AsyncSession, *, window_id: int, deleted_by: str) -> None:
    """A window made by mistake: from the next push its samples count again."""
    row = await _live_row(session, window_id)
    now = utcnow()
    row.deleted_at, row.updated_at, row.updated_by = now, now, deleted_by
    await session.flush()


async def list_suppressed(
    session: AsyncSession, *, window_id: int, limit: int, cursor: str | None
) -> SuppressedPage:
    """What the window held back, newest first."""
    await _get_row(session, window_id)
    query = (
        select(MaintenanceSuppression, AggregationPush.aggregation_id)
        .join(AggregationPush, col(AggregationPush.id) == col(MaintenanceSuppression.push_id))
        .where(MaintenanceSuppression.window_id == window_id)
        .order_by(col(MaintenanceSuppression.id).desc())
        .limit(limit + 1)
    )
    if cursor is not None:
        (last,) = SUPPRESSED_CURSOR.decode(cursor)
        query = query.where(col(MaintenanceSuppression.id) < last)
    rows = list((await session.exec(query)).all())
    items = [
        SuppressedPublic.model_validate({**row.model_dump(), "aggregation_id": aggregation_id})
        for row, aggregation_id in rows[:limit]
    ]
    last_id = rows[limit - 1][0].id if len(rows) > limit else None
    return SuppressedPage(
        items=items, next_cursor=SUPPRESSED_CURSOR.encode(last_id) if last_id else None
    )


# --- what a push reads ----------------------------------------------------------------------

_FOR_PUSH = """
    SELECT id, market, hub, ccap, service_group, entity_id, starts_at, ends_at, recurrence,
           timezone, ended_at, reason, change_ref, deleted_at
    FROM maintenance_window
    WHERE (deleted_at IS NULL AND starts_at <= $2 AND (recurrence IS NOT NULL OR ends_at > $1))
       OR id = ANY($3::bigint[])
"""


@dataclass(frozen=True, slots=True)
class PushWindows:
    """The windows of one push: those that may cover (live), and every one a note names."""

    live: list[Window]
    by_id: dict[int, Window]


async def load_for_push(
    db: asyncpg.Connection[Any], *, since: datetime, at: datetime, noted: set[int]
) -> PushWindows:
    """Live windows that can overlap (since, at], plus the windows `noted` on open tickets."""
    rows = await db.fetch(_FOR_PUSH, since, at, list(noted))
    live = [window_of(r) for r in rows if r["deleted_at"] is None and r["starts_at"] <= at]
    return PushWindows(live=live, by_id={r["id"]: window_of(r) for r in rows})


def note(reason: str, windows: dict[int, Window]) -> tuple[str, str] | None:
    """(title, text) of the note of a window's start or end, in Spanish; None otherwise."""
    kind, _, window_id = reason.partition(":")
    if kind not in ("maintenance", "maintenance_ended") or not window_id.isdigit():
        return None
    window = windows.get(int(window_id))
    what = f"ventana {window_id}"
    if window is not None:
        what += f": {window.reason}" + (
            f", cambio {window.change_ref}" if window.change_ref else ""
        )
    if kind == "maintenance":
        return "Mantenimiento programado", (
            f"Mantenimiento programado ({what}) cubre este elemento: el ticket no se actualiza "
            "ni se cierra mientras dure."
        )
    return "Fin de mantenimiento", (
        f"Terminó el mantenimiento programado ({what}); las muestras tomadas durante la "
        "ventana no cuentan."
    )
