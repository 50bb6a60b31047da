"""Assignment of outbox rows to backends: first assignment, failover and removal.

Set-based steps of the distribution worker (one SELECT … FOR UPDATE SKIP LOCKED, then one
UPDATE per backend); a key stays with the backend of its latest revision, and a key without
one goes to the rendezvous winner among the available backends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, String, any_, bindparam, func, literal_column, or_, update
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.sql.elements import CollectionAggregate, ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wm_service.distribution import rendezvous
from wm_service.distribution.models import Backend
from wm_service.models import TicketDelivery

# Inline literal, not a bind parameter: only then can the planner use the partial indexes
# (`WHERE status = 'pending'`) in the generic plans of asyncpg's prepared statements.
PENDING: ColumnElement[str] = literal_column("'pending'")
_IS_PENDING = col(TicketDelivery.status) == PENDING
# Not held by a live lease of a sender (delivery.py). By the database's clock, which is the
# same for every WM process. Rows being sent are neither claimed again nor moved.
NOT_LEASED = or_(
    col(TicketDelivery.claimed_until).is_(None), col(TicketDelivery.claimed_until) <= func.now()
)
# Ends a lease. A row that moves loses its lapsed lease too, so the sender that held it (if
# it still runs) cannot mark it delivered at its new backend.
RELEASED: dict[str, Any] = {"claimed_by": None, "claimed_until": None}


def ids_param(ids: Iterable[int]) -> CollectionAggregate[Any]:
    """`= ANY(:ids)` as one array parameter: IN (…) would bind thousands of parameters."""
    return any_(bindparam("ids", list(ids), type_=ARRAY(BigInteger)))


def texts_param(name: str, values: Iterable[str]) -> CollectionAggregate[Any]:
    """`= ANY(:name)` over strings, as one array parameter (like ids_param)."""
    return any_(bindparam(name, list(values), type_=ARRAY(String)))


async def assign_pending(
    session: AsyncSession,
    *,
    keep: Sequence[str],
    targets: Sequence[str],
    now: datetime,
    limit: int,
) -> int:
    """Assign up to `limit` unassigned pending rows, oldest first (see choose_backends);
    returns how many it assigned. A push assigns its own rows as it writes them: these are
    the rows written while no backend was available, or taken back from a removed one."""
    statement = (
        select(col(TicketDelivery.id), col(TicketDelivery.dedup_key))
        .where(
            col(TicketDelivery.backend_name).is_(None),
            _IS_PENDING,
            # A revision taken back from a removed backend waits out that backend's lease.
            or_(
                col(TicketDelivery.next_attempt_at).is_(None),
                col(TicketDelivery.next_attempt_at) <= now,
            ),
        )
        .order_by(col(TicketDelivery.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = [(cast(int, row_id), key) for row_id, key in (await session.exec(statement)).all()]
    if not rows:
        return 0
    backends = await choose_backends(session, {key for _, key in rows}, keep=keep, targets=targets)
    chosen = {row_id: name for row_id, key in rows if (name := backends.get(key))}
    await _set_backends(session, chosen=chosen, now=now)
    return len(chosen)


async def choose_backends(
    session: AsyncSession,
    keys: Iterable[str],
    *,
    keep: Sequence[str],
    targets: Sequence[str],
    reassign_orphans: bool = True,
) -> dict[str, str]:
    """The backend each key goes to: the backend of its latest assigned revision (pending or
    already delivered) while that backend is in `keep` (registered, not failed over), since
    the BE may still be working on the older revision and a second BE on the same key would
    create a second incident; else its rendezvous winner among the `targets` (available).

    An orphan (a key whose backend is not kept) goes to its winner too, unless
    `reassign_orphans` is off: then it is left out, like a key with no target (it waits).
    """
    keys = set(keys)
    kept = set(keep)
    latest = await _latest_backends(session, keys)
    holders = {key: name for key, name in latest.items() if name in kept}
    free = (k for k in keys if k not in holders and (reassign_orphans or k not in latest))
    return {**rendezvous.assign(free, targets), **holders}


async def choose_for_push(
    session: AsyncSession, keys: Iterable[str], targets: Sequence[str]
) -> dict[str, str]:
    """The backends a push writes its new rows with: choose_backends' rule with only the
    available backends kept, and a key whose backend is not available right now left out
    (unassigned), since only the distribution knows whether that backend is being fenced
    or came back before it was.

    The chosen backends' rows are key-share-locked until the push commits: removing one of
    them waits, then moves these rows with its others (heartbeats and probes, which only
    update the row, do not wait). A chosen backend removed meanwhile loses its keys to the
    distribution too. A fence cannot meet this push: a backend available now is fenced at
    the earliest failover_after from now, and the dispatcher moves a fenced backend's
    pending rows on each pass anyway.
    """
    chosen = await choose_backends(
        session, keys, keep=targets, targets=targets, reassign_orphans=False
    )
    present = set(
        (
            await session.exec(
                select(col(Backend.name))
                .where(col(Backend.name) == texts_param("names", set(chosen.values())))
                .with_for_update(read=True, key_share=True)
            )
        ).all()
    )
    return {key: name for key, name in chosen.items() if name in present}


async def _latest_backends(session: AsyncSession, keys: Iterable[str]) -> dict[str, str]:
    """The backend of the latest assigned revision of each key, whatever its status."""
    statement = (
        select(col(TicketDelivery.dedup_key), col(TicketDelivery.backend_name))
        .where(
            col(TicketDelivery.dedup_key) == texts_param("keys", keys),
            col(TicketDelivery.backend_name).is_not(None),
        )
        .order_by(col(TicketDelivery.dedup_key), col(TicketDelivery.id).desc())
        .ext(distinct_on(col(TicketDelivery.dedup_key)))
    )
    return {key: cast(str, name) for key, name in (await session.exec(statement)).all()}


async def fail_over(
    session: AsyncSession,
    *,
    keep: Sequence[str],
    targets: Sequence[str],
    now: datetime,
    limit: int,
    away_from: Sequence[str] | None = None,
) -> dict[str, int]:
    """Move up to `limit` undelivered rows held by any backend not in `keep` (only those of
    `away_from`, if given: an index lookup instead of a scan) to `targets`; returns how many
    rows moved away from each backend.

    `keep` are the registered backends not failed over (a row of an unregistered name moves
    too). Rows being sent right now (leased) are skipped; a later pass takes them if their
    send failed. With no target nothing moves: the rows wait where they are.
    """
    if not targets:
        return {}
    held = col(TicketDelivery.backend_name)
    statement = (
        select(col(TicketDelivery.id), col(TicketDelivery.dedup_key), held)
        .where(
            _IS_PENDING,
            held.is_not(None),
            held.not_in(list(keep))
            if away_from is None
            else held == texts_param("away", away_from),
            NOT_LEASED,
        )
        .order_by(col(TicketDelivery.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    selected = (await session.exec(statement)).all()
    rows = [(cast(int, row_id), key) for row_id, key, _ in selected]
    await _reassign(session, rows=rows, targets=targets, now=now)
    return dict(Counter(cast(str, former) for _, _, former in selected))


async def move_all_from(
    session: AsyncSession, *, backend_name: str, targets: Sequence[str], now: datetime
) -> int:
    """Move every undelivered row of a removed backend to `targets` (unassigned if none).

    Rows being sent right now (leased) stay until their send ends: delivered on a 2xx, else
    moved by the next failover pass (their backend is no longer registered).
    """
    statement = (
        select(col(TicketDelivery.id), col(TicketDelivery.dedup_key))
        .where(_IS_PENDING, col(TicketDelivery.backend_name) == backend_name, NOT_LEASED)
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
            .where(col(TicketDelivery.id) == ids_param(row_id for row_id, _ in rows))
            .values(backend_name=None, assigned_at=None, next_attempt_at=None, **RELEASED)
        )
        await session.exec(unassign)
        return
    winners = rendezvous.assign((key for _, key in rows), targets)
    await _set_backends(session, chosen={row_id: winners[key] for row_id, key in rows}, now=now)


async def _set_backends(session: AsyncSession, *, chosen: dict[int, str], now: datetime) -> None:
    """One UPDATE per backend (a handful), each for all of its rows of the chunk."""
    by_backend: dict[str, list[int]] = {}
    for row_id, name in chosen.items():
        by_backend.setdefault(name, []).append(row_id)
    for name, ids in by_backend.items():
        statement = (
            update(TicketDelivery)
            .where(col(TicketDelivery.id) == ids_param(ids))
            .values(backend_name=name, assigned_at=now, next_attempt_at=None, **RELEASED)
        )
        await session.exec(statement)
