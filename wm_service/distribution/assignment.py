"""Assignment of outbox rows to backends: first assignment, failover and removal.

Set-based steps of the distribution worker (one SELECT … FOR UPDATE SKIP LOCKED and one UPDATE
per batch); the winner of a key comes from rendezvous hashing over the available backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import update
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wm_service.distribution import rendezvous
from wm_service.models import TicketDelivery

_PENDING = col(TicketDelivery.status) == "pending"


async def assign_pending(
    session: AsyncSession, *, targets: Sequence[str], now: datetime, limit: int
) -> int:
    """Assign up to `limit` unassigned pending rows; returns how many were assigned.

    A row goes to the backend already holding an undelivered revision of its key (so the
    revisions of one key stay together and in order), else to the rendezvous winner among
    `targets`. With no target the rows stay unassigned and wait.
    """
    if not targets:
        return 0
    sibling = aliased(TicketDelivery)
    sibling_backend = (
        select(col(sibling.backend_name))
        .where(
            col(sibling.dedup_key) == col(TicketDelivery.dedup_key),
            col(sibling.status) == "pending",
            col(sibling.backend_name).is_not(None),
        )
        .order_by(col(sibling.id))
        .limit(1)
        .scalar_subquery()
    )
    statement = (
        select(col(TicketDelivery.id), col(TicketDelivery.dedup_key), sibling_backend)
        .where(col(TicketDelivery.backend_name).is_(None), _PENDING)
        .order_by(col(TicketDelivery.id))
        .limit(limit)
        .with_for_update(skip_locked=True, of=TicketDelivery)
    )
    rows = (await session.exec(statement)).all()
    if not rows:
        return 0
    winners = rendezvous.assign((key for _, key, held_by in rows if held_by is None), targets)
    chosen = {cast(int, row_id): held_by or winners[key] for row_id, key, held_by in rows}
    await _set_backends(session, chosen=chosen, now=now)
    return len(rows)


async def fail_over(
    session: AsyncSession,
    *,
    keep: Sequence[str],
    targets: Sequence[str],
    now: datetime,
    limit: int,
) -> int:
    """Move up to `limit` undelivered rows held by any backend not in `keep` to `targets`.

    `keep` are the registered backends not failed over (a row of an unregistered name moves
    too). Rows being sent right now are locked and skipped; the next pass takes them if their
    send failed. With no target nothing moves: the rows wait where they are.
    """
    if not targets:
        return 0
    statement = (
        select(col(TicketDelivery.id), col(TicketDelivery.dedup_key))
        .where(
            _PENDING,
            col(TicketDelivery.backend_name).is_not(None),
            col(TicketDelivery.backend_name).not_in(list(keep)),
        )
        .order_by(col(TicketDelivery.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = [(cast(int, row_id), key) for row_id, key in (await session.exec(statement)).all()]
    await _reassign(session, rows=rows, targets=targets, now=now)
    return len(rows)


async def move_all_from(
    session: AsyncSession, *, backend_name: str, targets: Sequence[str], now: datetime
) -> int:
    """Move every undelivered row of a removed backend to `targets` (unassigned if none).

    Waits for rows being sent right now: a send that succeeds meanwhile leaves its rows
    delivered, and only the rows still pending move.
    """
    statement = (
        select(col(TicketDelivery.id), col(TicketDelivery.dedup_key))
        .where(_PENDING, col(TicketDelivery.backend_name) == backend_name)
        .order_by(col(TicketDelivery.id))
        .with_for_update()
    )
    rows = [(cast(int, row_id), key) for row_id, key in (await session.exec(statement)).all()]
    await _reassign(session, rows=rows, targets=targets, now=now)
    return len(rows)


async def _reassign(
    session: AsyncSession,
    *,
    rows: Sequence[tuple[int, str]],
    targets: Sequence[str],
    now: datetime,
) -> None:
    if not rows:
        return
    if not targets:
        unassign = (
            update(TicketDelivery)
            .where(col(TicketDelivery.id).in_([row_id for row_id, _ in rows]))
            .values(backend_name=None, assigned_at=None, next_attempt_at=None)
        )
        await session.exec(unassign)
        return
    winners = rendezvous.assign((key for _, key in rows), targets)
    await _set_backends(session, chosen={row_id: winners[key] for row_id, key in rows}, now=now)


async def _set_backends(session: AsyncSession, *, chosen: dict[int, str], now: datetime) -> None:
    """One UPDATE per backend (a handful), each for all of its rows of the batch."""
    by_backend: dict[str, list[int]] = {}
    for row_id, name in chosen.items():
        by_backend.setdefault(name, []).append(row_id)
    for name, ids in by_backend.items():
        statement = (
            update(TicketDelivery)
            .where(col(TicketDelivery.id).in_(ids))
            .values(backend_name=name, assigned_at=now, next_attempt_at=None)
        )
        await session.exec(statement)
