"""Fencing: one owner per element across BE deaths, failovers and returns (docs/contracts.md §5).

Platforms have no conditional writes, so ownership is fenced on the BE's side by two things
the WM hands out with every heartbeat answer:

* a **generation** per backend, carried by every delivery. A failover bumps it (once per
  silence, and only while the backend is still silent: a guarded UPDATE), and in the same
  transaction puts back in the queue every revision that backend accepted but has not
  reported finished. A BE that comes back learns the new generation from its next
  heartbeat answer and gives up (`Moved`) the revisions of older generations it still holds.
* a **lease**: a BE calls the platforms only while its last heartbeat answer is younger than
  the lease, and each call is bounded by `max_call`. The WM fails a backend over only after
  `failover_after` > lease + max_call of silence (WMSettings refuses less), so the calls of a
  BE cut off from the WM have ended before another BE takes its elements.

Only backends that heartbeat are fenced; one registered by hand (probed, never heartbeating)
keeps the probe-based availability and gets no generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Update, func, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from wm_service.distribution.assignment import PENDING, RELEASED, ids_param
from wm_service.distribution.models import Backend
from wm_service.models import TicketDelivery

# Accepted by the backend and not reported finished: the revisions a failover takes back.
UNFINISHED_AT_BACKEND = "at_backend"


def is_fenced(backend: Backend) -> bool:
    """A backend that heartbeats holds a lease and a generation; one registered by hand
    and only probed does not."""
    return backend.last_seen_at is not None


def requeued(*, moved_from: object, now: datetime) -> dict[str, Any]:
    """The values that put a delivery back in the queue, unassigned: the distribution's
    assignment sends it to the element's current owner, or chooses a new one."""
    return {
        "status": "pending",
        "stage": "moved",
        "backend_name": None,
        "assigned_at": None,
        "next_attempt_at": None,
        "generation": None,
        "moved_from": moved_from,
        "moved_at": now,
        **RELEASED,
    }


async def fence(
    session: AsyncSession, *, backend_name: str, silent_since: datetime, now: datetime
) -> int | None:
    """Bump the generation of a backend silent since before `silent_since` and take back
    its unfinished revisions; returns how many, or None when it was not failed over (it
    heartbeated meanwhile, is not fenced, or this silence was already handled).

    The guarded UPDATE locks the backend's row: a heartbeat racing it either commits first
    (no failover) or waits and is answered with the new generation.
    """
    bump = (
        update(Backend)
        .where(
            col(Backend.name) == backend_name,
            col(Backend.last_seen_at) < silent_since,
            col(Backend.failed_over_seen_at).is_distinct_from(col(Backend.last_seen_at)),
        )
        .values(
            generation=func.nextval("backend_generation_seq"),
            failed_over_at=now,
            failed_over_seen_at=col(Backend.last_seen_at),
        )
        .returning(col(Backend.generation))
        .execution_options(synchronize_session=False)
    )
    if (await session.exec(bump)).first() is None:
        return None
    taken_back = (
        _unfinished_at(backend_name)
        .values(**requeued(moved_from=backend_name, now=now))
        .returning(col(TicketDelivery.id))
    )
    return len((await session.exec(taken_back)).all())


async def take_back_after_removal(
    session: AsyncSession, *, backend_name: str, now: datetime, wait: timedelta
) -> int:
    """A removed backend's unfinished revisions go back to the queue, but are sent again
    only after `wait` (its lease plus one call): it may be alive and still finishing one.
    If it heartbeats again it is registered anew, with a new generation."""
    taken_back = (
        _unfinished_at(backend_name)
        .values(**{**requeued(moved_from=backend_name, now=now), "next_attempt_at": now + wait})
        .returning(col(TicketDelivery.id))
    )
    return len((await session.exec(taken_back)).all())


async def take_back_moved(
    session: AsyncSession, *, backend_name: str, ids: Sequence[int], now: datetime
) -> int:
    """Revisions a backend reported `moved` (it gave them up: their generation is past)
    that still point at it go back to the queue, so none waits for a BE that won't act."""
    if not ids:
        return 0
    statement = (
        update(TicketDelivery)
        .where(
            col(TicketDelivery.id) == ids_param(ids),
            col(TicketDelivery.backend_name) == backend_name,
            col(TicketDelivery.stage) == "moved",
        )
        .values(**requeued(moved_from=backend_name, now=now))
        .returning(col(TicketDelivery.id))
    )
    return len((await session.exec(statement)).all())


def _unfinished_at(backend_name: str) -> Update:
    return update(TicketDelivery).where(
        col(TicketDelivery.backend_name) == backend_name,
        col(TicketDelivery.status) != PENDING,
        col(TicketDelivery.stage) == UNFINISHED_AT_BACKEND,
    )
