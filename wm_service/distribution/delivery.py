"""The one-batch send step of the distribution: claim a backend's due revisions, POST, mark.

Called by the worker's sender loops inside one session scope: the claimed rows stay locked
(FOR UPDATE SKIP LOCKED) while they are sent, so no other WM process sends them concurrently.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import msgspec
from sqlalchemy import Update, and_, exists, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wm_service.models import TicketDelivery

INTAKE_PATH = "/api/v1/tickets"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Target:
    """Where one backend takes its tickets."""

    name: str
    url: str
    intake_token: str = field(repr=False)


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter between failed sends of the same rows."""

    base_seconds: float
    cap_seconds: float

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the `attempts`-th failed try: half fixed, half random."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        # "Equal jitter": never sooner than half the ceiling, and WM processes that failed
        # together do not retry in lockstep.
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


@dataclass(frozen=True)
class Claimed:
    id: int
    dedup_key: str
    attempts: int
    payload: dict[str, Any]


@dataclass(frozen=True)
class BatchResult:
    """What one step did: how many revisions it sent, and whether the BE took them."""

    sent: int
    delivered: bool
    error: str | None = None


async def claim(
    session: AsyncSession, *, backend_name: str, now: datetime, limit: int
) -> list[Claimed]:
    """Lock up to `limit` due revisions of one backend that may be sent now, oldest first.

    A revision may be sent only when every older undelivered revision of its dedup key is in
    the same batch (ids grow with revisions, so id order is per-key revision order). Rows that
    another sender holds are skipped, and so are the later revisions of their keys.
    """
    older = aliased(TicketDelivery)
    row = TicketDelivery
    not_due = or_(
        col(older.backend_name).is_distinct_from(col(row.backend_name)),
        col(older.next_attempt_at) > now,
    )
    waits_for_older = exists().where(
        col(older.dedup_key) == col(row.dedup_key),
        col(older.status) == "pending",
        col(older.id) < col(row.id),
        not_due,
    )
    statement = (
        select(col(row.id), col(row.dedup_key), col(row.attempts), col(row.payload))
        .where(
            col(row.status) == "pending",
            col(row.backend_name) == backend_name,
            or_(col(row.next_attempt_at).is_(None), col(row.next_attempt_at) <= now),
            ~waits_for_older,
        )
        .order_by(col(row.id))
        .limit(limit)
        .with_for_update(skip_locked=True, of=row)
    )
    candidates = [
        Claimed(id=cast(int, row_id), dedup_key=key, attempts=attempts, payload=payload)
        for row_id, key, attempts, payload in (await session.exec(statement)).all()
    ]
    if not candidates:
        return []
    # SKIP LOCKED hides rows other senders hold right now; a later revision of such a key must
    # wait for them, so keep a row only if every older pending revision of its key is kept.
    keys = {c.dedup_key for c in candidates}
    newest = max(c.id for c in candidates)
    pending = await session.exec(
        select(col(row.id), col(row.dedup_key)).where(
            and_(
                col(row.status) == "pending",
                col(row.dedup_key).in_(keys),
                col(row.id) < newest,
            )
        )
    )
    pending_by_key: dict[str, list[int]] = {}
    for row_id, key in pending.all():
        pending_by_key.setdefault(key, []).append(cast(int, row_id))
    kept: set[int] = set()
    batch: list[Claimed] = []
    for candidate in candidates:
        older_ids = (i for i in pending_by_key.get(candidate.dedup_key, ()) if i < candidate.id)
        if all(i in kept for i in older_ids):
            kept.add(candidate.id)
            batch.append(candidate)
    return batch


async def deliver_batch(
    session: AsyncSession,
    *,
    client: httpx.AsyncClient,
    target: Target,
    now: datetime,
    batch_size: int,
    backoff: Backoff,
) -> BatchResult:
    """Send one batch of `target`'s due revisions and record the outcome on the rows.

    Delivered only after the BE's 2xx. If the WM dies after the 2xx but before the caller
    commits, the rows are still pending and are sent again later: harmless, the BE's intake
    is idempotent by (ticket_id, revision).
    """
    batch = await claim(session, backend_name=target.name, now=now, limit=batch_size)
    if not batch:
        return BatchResult(sent=0, delivered=True)
    ids = [c.id for c in batch]
    error = await _post(client, target, [c.payload for c in batch])
    if error is None:
        delivered = _rows(ids).values(
            status="delivered",
            delivered_at=utcnow(),
            attempts=col(TicketDelivery.attempts) + 1,
            last_error=None,
            next_attempt_at=None,
        )
        await session.exec(delivered)
        return BatchResult(sent=len(batch), delivered=True)
    attempts = max(c.attempts for c in batch) + 1
    retry_at = utcnow() + timedelta(seconds=backoff.delay(attempts))
    failed = _rows(ids).values(
        attempts=col(TicketDelivery.attempts) + 1, last_error=error, next_attempt_at=retry_at
    )
    await session.exec(failed)
    return BatchResult(sent=len(batch), delivered=False, error=error)


async def _post(
    client: httpx.AsyncClient, target: Target, payloads: list[dict[str, Any]]
) -> str | None:
    """POST the batch; None on 2xx, else a short description of the failure."""
    try:
        response = await client.post(
            target.url + INTAKE_PATH,
            content=msgspec.json.encode({"tickets": payloads}),
            headers={
                "Authorization": f"Bearer {target.intake_token}",
                "Content-Type": "application/json",
            },
        )
    except httpx.HTTPError as exc:
        return _redact(f"{type(exc).__name__}: {exc}", target)
    if response.is_success:
        return None
    return _redact(f"HTTP {response.status_code}: {response.text[:300]}", target)


def _rows(ids: list[int]) -> Update:
    return update(TicketDelivery).where(col(TicketDelivery.id).in_(ids))


def _redact(message: str, target: Target) -> str:
    """Errors are stored and shown to operators: never let the token slip into them."""
    return message.replace(target.intake_token, "***")[:500]
