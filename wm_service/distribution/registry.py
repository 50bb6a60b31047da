"""The backend registry: BE instances register (and heartbeat), are probed, listed and removed.

Service functions behind /api/v1/backends and the worker's probe loop; they flush, the caller's
session scope commits. "Available" = heartbeat or successful /readyz probe within the timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.db import redact_url
from ticketing_common.errors import NotFound
from wm_service.distribution import assignment, fencing
from wm_service.distribution.assignment import PENDING
from wm_service.distribution.models import Backend
from wm_service.distribution.schemas import (
    BackendList,
    BackendPublic,
    BackendRegistered,
    BackendRegistration,
    DeliveryCounts,
    LeaseGrant,
)
from wm_service.models import TicketDelivery


@dataclass(frozen=True)
class Health:
    """How long a backend may stay silent before it is unavailable, then failed over; and
    the lease its heartbeat answers grant (fencing.py; WMSettings checks they fit)."""

    backend_timeout: timedelta
    failover_after: timedelta
    lease: timedelta = timedelta(seconds=20)
    max_call: timedelta = timedelta(seconds=35)

    def silent_since(self, now: datetime) -> datetime:
        """A backend last healthy before this is failed over."""
        return now - self.backend_timeout - self.failover_after


def last_healthy_at(backend: Backend) -> datetime | None:
    """A fenced backend's last heartbeat: only a heartbeat renews its lease, so a /readyz
    probe must not keep it in the distribution while it may not call the platforms. For
    a backend registered by hand, the later of heartbeat and successful probe."""
    if fencing.is_fenced(backend):
        return backend.last_seen_at
    times = [t for t in (backend.last_seen_at, backend.last_probe_ok_at) if t is not None]
    return max(times, default=None)


def is_available(backend: Backend, *, now: datetime, health: Health) -> bool:
    healthy = last_healthy_at(backend)
    return healthy is not None and healthy >= now - health.backend_timeout


def is_failed_over(backend: Backend, *, now: datetime, health: Health) -> bool:
    """Unavailable for longer than failover_after: its undelivered revisions go elsewhere."""
    healthy = last_healthy_at(backend)
    return healthy is None or healthy < health.silent_since(now)


async def register(
    session: AsyncSession,
    *,
    name: str,
    registration: BackendRegistration,
    now: datetime,
    heartbeat: bool,
) -> Backend:
    """Create or update a backend (idempotent upsert). A `heartbeat` (the BE itself, with the
    backend token) refreshes last_seen_at and stores the health it sent; a registration by
    hand does not, so the backend becomes available only once a /readyz probe succeeds, and
    a new URL forgets the probes of the old one."""
    url = str(registration.url).rstrip("/")
    values: dict[str, object] = {
        "url": url,
        "intake_token": registration.intake_token.get_secret_value(),
        "last_probe_ok_at": case(
            (col(Backend.url) == url, col(Backend.last_probe_ok_at)), else_=None
        ),
    }
    if registration.control_token is not None:
        values["control_token"] = registration.control_token.get_secret_value()
    if heartbeat:
        values["last_seen_at"] = now
        if registration.health is not None:
            values["health"] = registration.health.model_dump(mode="json")
            values["health_at"] = now
    inserted = {k: v for k, v in values.items() if k != "last_probe_ok_at"}
    statement = (
        insert(Backend)
        .values(name=name, registered_at=now, **inserted)
        .on_conflict_do_update(index_elements=["name"], set_=values)
    )
    await session.exec(statement)
    backend = await session.get(Backend, name, populate_existing=True)
    assert backend is not None  # just upserted in this transaction
    return backend


async def get(session: AsyncSession, *, name: str) -> Backend:
    backend = await session.get(Backend, name)
    if backend is None:
        raise NotFound(f"no backend named {name!r} is registered")
    return backend


async def list_all(session: AsyncSession) -> list[Backend]:
    return list((await session.exec(select(Backend).order_by(col(Backend.name)))).all())


async def list_available(session: AsyncSession, *, now: datetime, health: Health) -> list[Backend]:
    return [b for b in await list_all(session) if is_available(b, now=now, health=health)]


async def record_probe(
    session: AsyncSession, *, name: str, ok: bool, error: str | None, now: datetime
) -> None:
    """Store the outcome of one /readyz probe; a no-op for a backend deleted meanwhile.

    One UPDATE by name rather than load-modify-flush: a DELETE that commits between the
    load and the flush would make the flush a StaleDataError and lose the whole round.
    """
    values: dict[str, object] = {
        "last_probe_at": now,
        "last_probe_error": None if ok else (error or "probe failed")[:500],
    }
    if ok:
        values["last_probe_ok_at"] = now
    statement = (
        update(Backend)
        .where(col(Backend.name) == name)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    await session.exec(statement)


async def delete(session: AsyncSession, *, name: str, now: datetime, health: Health) -> None:
    """Remove a backend; its undelivered revisions move to the remaining available backends,
    and those it accepted but did not finish follow once its lease has surely ended."""
    backend = await get(session, name=name)
    await session.delete(backend)
    await session.flush()
    await fencing.take_back_after_removal(
        session, backend_name=name, now=now, wait=health.lease + health.max_call
    )
    targets = [
        b.name for b in await list_available(session, now=now, health=health) if b.name != name
    ]
    await assignment.move_all_from(session, backend_name=name, targets=targets, now=now)


# A backend without a row in the outbox.
_NONE = DeliveryCounts(assigned=0, pending=0, delivered=0)


async def overview(session: AsyncSession, *, now: datetime, health: Health) -> BackendList:
    """Every backend with its availability and outbox counts, plus the unassigned backlog."""
    counts = await _delivery_counts(session)
    backends = [
        BackendPublic(**_state(b, now=now, health=health), tickets=counts.get(b.name, _NONE))
        for b in await list_all(session)
    ]
    unassigned = counts.get(None, _NONE).pending
    return BackendList(backends=backends, unassigned=unassigned)


async def describe(
    session: AsyncSession, *, name: str, now: datetime, health: Health
) -> BackendPublic:
    backend = await get(session, name=name)
    counts = await _counts_of(session, name)
    return BackendPublic(**_state(backend, now=now, health=health), tickets=counts)


async def registered(
    session: AsyncSession, *, name: str, now: datetime, health: Health, heartbeat: bool
) -> BackendRegistered:
    """The answer to a PUT: the backend as GET shows it; to a heartbeat, its lease instead
    of its ticket counts. Counting reads every outbox row assigned to it that retention
    keeps, 0.29 s at a million rows (bench.scale), which each heartbeat paid for a BE that
    reads only the lease."""
    backend = await get(session, name=name)
    return BackendRegistered(
        **_state(backend, now=now, health=health),
        tickets=None if heartbeat else await _counts_of(session, name),
        lease=lease_grant(backend, health) if heartbeat else None,
    )


async def _counts_of(session: AsyncSession, name: str) -> DeliveryCounts:
    return (await _delivery_counts(session, backend_name=name)).get(name, _NONE)


async def _delivery_counts(
    session: AsyncSession, *, backend_name: str | None = None
) -> dict[str | None, DeliveryCounts]:
    pending = col(TicketDelivery.status) == PENDING
    delivered = col(TicketDelivery.status) != PENDING
    statement = select(
        col(TicketDelivery.backend_name),
        func.count(),
        func.count().filter(pending),
        func.count().filter(delivered),
    ).group_by(col(TicketDelivery.backend_name))
    if backend_name is not None:
        statement = statement.where(col(TicketDelivery.backend_name) == backend_name)
    rows = (await session.exec(statement)).all()
    return {
        name: DeliveryCounts(assigned=total, pending=waiting, delivered=done)
        for name, total, waiting, done in rows
    }


def _state(backend: Backend, *, now: datetime, health: Health) -> dict[str, Any]:
    """The fields of schemas.BackendState for `backend`."""
    return {
        "name": backend.name,
        # A URL registered with user:password@ keeps them for the calls, never for display.
        "url": redact_url(backend.url),
        "available": is_available(backend, now=now, health=health),
        "registered_at": backend.registered_at,
        "last_seen_at": backend.last_seen_at,
        "last_probe_at": backend.last_probe_at,
        "last_probe_ok_at": backend.last_probe_ok_at,
        "last_probe_error": backend.last_probe_error,
        "health": backend.health,
        "health_at": backend.health_at,
        "fenced": fencing.is_fenced(backend),
        "generation": backend.generation if fencing.is_fenced(backend) else None,
        "failed_over_at": backend.failed_over_at,
    }


def lease_grant(backend: Backend, health: Health) -> LeaseGrant:
    """What a heartbeat answer tells the BE: its generation and how long it may call."""
    return LeaseGrant(
        generation=backend.generation,
        lease_seconds=health.lease.total_seconds(),
        max_call_seconds=health.max_call.total_seconds(),
    )
