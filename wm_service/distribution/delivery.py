"""The one-batch send step of the distribution: lease a backend's due revisions, POST, mark.

Called by the worker's sender loops; the claiming pattern is the BE's (ticketing_common.lease):
no transaction and no row lock is held across the POST, the lease keeps other senders away.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

import httpx
import msgspec
from sqlalchemy import Update, case, func, or_, text, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from ticketing_common.backoff import Backoff
from ticketing_common.db import session_scope
from ticketing_common.lease import keep_lease
from wm_service.distribution.assignment import (
    NOT_LEASED,
    PENDING,
    RELEASED,
    ids_param,
    texts_param,
)
from wm_service.distribution.fencing import requeued
from wm_service.distribution.models import Backend
from wm_service.models import TicketDelivery

INTAKE_PATH = "/api/v1/tickets"
# Answers that blame the batch's content (a revision the BE cannot validate, a batch too
# large): halving the batch lets the good revisions through and isolates the bad one.
# Other 4xx (401, 403, 404) blame the target, not a revision.
SPLIT_STATUSES = frozenset({400, 413, 422})
HELD_BACK = "held back: an older revision of this key was not accepted"
# How long a sender's claim on its batch lasts without renewal. It is renewed every third of
# itself while the batch is sent, so a send of any length (a POST may take the whole request
# timeout, and a halved batch makes several) keeps it; after a WM crash mid-send the rows are
# sent again once it lapses.
LEASE_SECONDS = 30.0
# A sender stopped mid-send hands its rows back, if the database answers this quickly.
RELEASE_SECONDS = 5.0
# Pages of due candidates a claim reads, at most, looking for a sendable row (see claim).
MAX_PAGES = 4

_scope = contextlib.asynccontextmanager(session_scope)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Target:
    """Where one backend takes its tickets."""

    name: str
    url: str
    intake_token: str = field(repr=False)


class Claimed(msgspec.Struct, frozen=True):
    """One outbox row a sender holds. A struct, not a dataclass: a claim of 500 rows derives
    each one again with its payload (dataclasses.replace: 6 µs a row; this: 0.1 µs)."""

    id: int
    dedup_key: str
    attempts: int
    # The ticket JSON as stored with the revision, sent as is (never decoded and re-encoded).
    payload: bytes = b""
    backend_name: str = ""
    # The backend's generation when the batch was claimed (None: the backend is not fenced).
    generation: int | None = None


@dataclass(frozen=True)
class BatchResult:
    """What one step did: how many revisions it sent, and whether the BE took them."""

    sent: int
    delivered: bool
    error: str | None = None


async def claim(
    session: AsyncSession,
    *,
    backend_name: str,
    now: datetime,
    limit: int,
    worker: str,
    lease_seconds: float,
) -> list[Claimed]:
    """Lease up to `limit` due revisions of one backend that may be sent now, oldest first.

    A revision may be sent only when every older undelivered revision of its dedup key is in
    the same batch (ids grow with revisions, so id order is per-key revision order). Rows
    another sender holds (locked, or leased until later) are skipped, and so are the later
    revisions of their keys. The caller commits at once: the lease, not a lock, keeps the
    rows this `worker`'s while it sends them.
    """
    row = TicketDelivery
    columns = (col(row.id), col(row.dedup_key), col(row.attempts))
    still_due = (
        col(row.status) == PENDING,
        or_(col(row.next_attempt_at).is_(None), col(row.next_attempt_at) <= now),
        NOT_LEASED,
    )
    due = select(*columns).where(col(row.backend_name) == backend_name, *still_due)
    # Candidates a page at a time, in id order, until a page yields a sendable row: a page
    # of revisions all waiting behind an older one of their key (in backoff, at another
    # backend, being sent) must not hide the sendable rows after it. The key order is checked
    # by one query over the page's keys rather than a correlated subquery per row, whose plan
    # hung on fresh statistics (right after a big push it walked the whole pending index per
    # candidate: 0.2-0.8 s per claim). Pages are read without locks and at most MAX_PAGES of
    # them (a long outage queues every element's later revisions behind its first); only the
    # batch chosen is locked.
    #
    # The pages are ordered by (backend, id) with the backend as a one-element array, an
    # order only ix_ticket_delivery_pending_backend yields. Given `backend = x ORDER BY id`,
    # the planner, with statistics from right after a push (every row pending), walked the
    # primary key from the table's start past every row delivered since: 20 000 rows per
    # claim at the end of a 20 000-ticket run, a tenth of the WM's Postgres time. (Should a
    # Postgres treat `= ANY` of one element as `=`, that walk returns: bench.scale prints
    # this plan.)
    pages = (
        select(*columns)
        .where(col(row.backend_name) == texts_param("one_backend", [backend_name]), *still_due)
        .order_by(col(row.backend_name), col(row.id))
        .limit(limit)
    )
    fence: _Fence | None = None  # read once there is something to send
    after = 0
    for _ in range(MAX_PAGES):
        page = (await session.exec(pages.where(col(row.id) > after))).all()
        if not page:
            return []
        if fence is None:
            fence = await _fence_of(session, backend_name)
            if fence.failed_over:
                # Failed over for its current silence: nothing more goes to it under any
                # generation until it heartbeats again (a one-way partition may still let
                # the POST through).
                return []
        candidates = [
            Claimed(
                id=cast(int, row_id),
                dedup_key=key,
                attempts=attempts,
                generation=fence.generation,
                backend_name=backend_name,
            )
            for row_id, key, attempts in page
        ]
        batch = await _in_key_order(session, candidates)
        if batch:
            break
        after = candidates[-1].id
    else:
        return []
    batch = await _locked(session, due, batch)
    if not batch:
        return []
    lease = update(TicketDelivery).where(col(TicketDelivery.id) == ids_param(c.id for c in batch))
    await session.exec(
        lease.values(
            claimed_by=worker,
            claimed_until=_lease_end(lease_seconds),
            generation=batch[0].generation,
        )
    )
    payloads = await _payloads(session, [c.id for c in batch])
    return [msgspec.structs.replace(c, payload=payloads[c.id]) for c in batch]


_PAYLOADS = text(
    """
    SELECT d.id, r.payload::text FROM ticket_delivery d
    JOIN ticket_revision r ON r.id = d.revision_id
    WHERE d.id = ANY(CAST(:ids AS bigint[]))
    """
)


async def _payloads(session: AsyncSession, ids: list[int]) -> dict[int, bytes]:
    """Each delivery's ticket JSON, as stored with its revision."""
    rows = await (await session.connection()).execute(_PAYLOADS, {"ids": ids})
    return {row_id: payload.encode() for row_id, payload in rows}


@dataclass(frozen=True)
class _Fence:
    """A backend's fencing state as a batch sees it."""

    fenced: bool  # it heartbeats, so its deliveries carry its generation
    generation: int | None  # None unless fenced
    failed_over: bool  # failed over for its current silence: send it nothing


async def _fence_of(session: AsyncSession, backend_name: str, *, lock: bool = False) -> _Fence:
    """The backend's fencing state; with `lock`, its row is held FOR SHARE until commit.
    A backend that is gone counts as not fenced."""
    statement = select(
        col(Backend.generation), col(Backend.last_seen_at), col(Backend.failed_over_seen_at)
    ).where(col(Backend.name) == backend_name)
    if lock:
        statement = statement.with_for_update(read=True)
    row = (await session.exec(statement)).first()
    if row is None or row[1] is None:
        return _Fence(fenced=False, generation=None, failed_over=False)
    generation, last_seen_at, failed_over_seen_at = row
    return _Fence(
        fenced=True, generation=generation, failed_over=failed_over_seen_at == last_seen_at
    )


async def _locked(
    session: AsyncSession, due: Select[int | None, str, int], batch: list[Claimed]
) -> list[Claimed]:
    """The batch's rows this transaction could lock while still due, in key order: another
    sender may have taken some since they were read, and a revision whose older one it
    took waits for it."""
    ids = [c.id for c in batch]
    statement = due.where(col(TicketDelivery.id) == ids_param(ids)).with_for_update(
        skip_locked=True
    )
    locked = {cast(int, row_id) for row_id, _, _ in (await session.exec(statement)).all()}
    lost: set[str] = set()
    kept: list[Claimed] = []
    for candidate in batch:
        if candidate.id in locked and candidate.dedup_key not in lost:
            kept.append(candidate)
        else:
            lost.add(candidate.dedup_key)
    return kept


async def _in_key_order(session: AsyncSession, candidates: list[Claimed]) -> list[Claimed]:
    """The candidates, in id order, whose older pending revisions of their key are all kept.

    An older pending revision may be in another sender's claim transaction right now (SKIP
    LOCKED hid it). The rows left out are not leased and go back to the queue at commit.
    """
    row = TicketDelivery
    keys = {c.dedup_key for c in candidates}
    newest = max(c.id for c in candidates)
    pending = await session.exec(
        select(col(row.id), col(row.dedup_key)).where(
            col(row.status) == PENDING,
            col(row.dedup_key) == texts_param("keys", keys),
            col(row.id) < newest,
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
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    client: httpx.AsyncClient,
    target: Target,
    now: datetime,
    batch_size: int,
    backoff: Backoff,
    worker: str,
    lease_seconds: float = LEASE_SECONDS,
) -> BatchResult:
    """Send one batch of `target`'s due revisions and record the outcome on the rows.

    Three steps, no transaction open across HTTP: lease the batch (one short transaction),
    POST it while the lease is renewed, record the outcome (another short transaction) on
    the rows this worker still holds. Delivered only after the BE's 2xx. If the WM dies
    before recording, the rows stay pending and are sent again once the lease lapses:
    harmless, the BE's intake is idempotent by (ticket_id, revision).
    """
    async with _scope(sessionmaker) as session:
        batch = await claim(
            session,
            backend_name=target.name,
            now=now,
            limit=batch_size,
            worker=worker,
            lease_seconds=lease_seconds,
        )
    if not batch:
        return BatchResult(sent=0, delivered=True)
    ids = [c.id for c in batch]

    async def renew() -> None:
        async with _scope(sessionmaker) as session:
            renewal = _held(ids, worker=worker).values(claimed_until=_lease_end(lease_seconds))
            await session.exec(renewal)

    try:
        async with keep_lease(renew, lease_seconds=lease_seconds, name=worker):
            delivered, failed = await _send(client, target, batch, generation=batch[0].generation)
    except BaseException:
        # Stopped (or broken) mid-send: hand the rows back now rather than after the lease.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(_release(sessionmaker, ids, worker=worker), RELEASE_SECONDS)
        raise
    async with _scope(sessionmaker) as session:
        await _record(session, delivered=delivered, failed=failed, worker=worker, backoff=backoff)
    if not failed:
        return BatchResult(sent=len(batch), delivered=True)
    return BatchResult(sent=len(batch), delivered=False, error=next(iter(failed)))


async def _record(
    session: AsyncSession,
    *,
    delivered: list[Claimed],
    failed: dict[str, list[Claimed]],
    worker: str,
    backoff: Backoff,
) -> None:
    """Mark the delivered rows, give the failed ones their error and retry time; both end
    the lease. Rows whose lease was lost meanwhile (lapsed and taken, or moved by a
    failover) are left to their new holder."""
    if delivered:
        # The backend's generation now, its row share-locked until commit: a failover
        # (fencing.fence updates that row) either committed before, and these rows are
        # stale, or waits for this record, and then finds them at_backend and takes them back.
        current = (await _fence_of(session, delivered[0].backend_name, lock=True)).generation
        # Accepted under a generation a failover has since replaced: the BE will give that
        # copy up (fencing.py), so the revision goes back to the queue instead.
        stale = _held([c.id for c in delivered], worker=worker).where(
            col(TicketDelivery.generation).is_distinct_from(current)
        )
        await session.exec(
            stale.values(**requeued(moved_from=col(TicketDelivery.backend_name), now=utcnow()))
        )
        done = _held([c.id for c in delivered], worker=worker).where(
            col(TicketDelivery.generation).is_not_distinct_from(current)
        )
        done = done.values(
            status="delivered",
            # A fast BE's report may have arrived before this ack was recorded: keep it.
            stage=case(
                (col(TicketDelivery.stage).in_(("pending", "moved")), "at_backend"),
                else_=col(TicketDelivery.stage),
            ),
            delivered_at=utcnow(),
            attempts=col(TicketDelivery.attempts) + 1,
            last_error=None,
            next_attempt_at=None,
            **RELEASED,
        )
        await session.exec(done)
    if not failed:
        return
    attempts = max(c.attempts for rows in failed.values() for c in rows) + 1
    retry_at = utcnow() + timedelta(seconds=backoff.delay(attempts))
    for error, rows in failed.items():
        retry = _held([c.id for c in rows], worker=worker).values(
            attempts=col(TicketDelivery.attempts) + 1,
            last_error=error,
            next_attempt_at=retry_at,
            **RELEASED,
        )
        await session.exec(retry)


async def _release(
    sessionmaker: async_sessionmaker[AsyncSession], ids: list[int], *, worker: str
) -> None:
    async with _scope(sessionmaker) as session:
        await session.exec(_held(ids, worker=worker).values(**RELEASED))


async def _send(
    client: httpx.AsyncClient, target: Target, batch: list[Claimed], *, generation: int | None
) -> tuple[list[Claimed], dict[str, list[Claimed]]]:
    """POST the batch, halving it while the BE rejects its content; (delivered, failed by error).

    Parts are sent depth first in id order, so a revision is decided before any later one of
    its key, and the later revisions of a key whose revision failed are held back (never
    delivered out of order). Any other failure fails every revision not yet delivered.
    """
    delivered: list[Claimed] = []
    failed: dict[str, list[Claimed]] = {}
    failed_keys: set[str] = set()
    parts = [batch]
    while parts:
        part = parts.pop()
        held = [c for c in part if c.dedup_key in failed_keys]
        if held:
            failed.setdefault(HELD_BACK, []).extend(held)
            part = [c for c in part if c.dedup_key not in failed_keys]
        if not part:
            continue
        status, error = await _post(client, target, [c.payload for c in part], generation)
        if error is None:
            delivered.extend(part)
        elif status in SPLIT_STATUSES and len(part) > 1:
            half = len(part) // 2
            parts += [part[half:], part[:half]]  # popped from the end: first half first
        elif status in SPLIT_STATUSES:
            failed.setdefault(error, []).extend(part)
            failed_keys.add(part[0].dedup_key)
        else:
            failed.setdefault(error, []).extend([*part, *(c for p in parts for c in p)])
            break
    return delivered, failed


async def _post(
    client: httpx.AsyncClient,
    target: Target,
    payloads: list[bytes],
    generation: int | None,
) -> tuple[int | None, str | None]:
    """POST the batch; (HTTP status or None, None on 2xx else a short description)."""
    # The documents are JSON already: the body is assembled around them, not re-encoded.
    head = b'{"tickets":[' if generation is None else b'{"generation":%d,"tickets":[' % generation
    try:
        response = await client.post(
            target.url + INTAKE_PATH,
            content=head + b",".join(payloads) + b"]}",
            headers={
                "Authorization": f"Bearer {target.intake_token}",
                "Content-Type": "application/json",
            },
        )
    except httpx.HTTPError as exc:
        return None, _redact(f"{type(exc).__name__}: {exc}", target)
    if response.is_success:
        return response.status_code, None
    return response.status_code, _redact(
        f"HTTP {response.status_code}: {response.text[:300]}", target
    )


def _held(ids: list[int], *, worker: str) -> Update:
    """An UPDATE of those of `ids` that are still pending and leased by `worker`."""
    return update(TicketDelivery).where(
        col(TicketDelivery.id) == ids_param(ids),
        col(TicketDelivery.claimed_by) == worker,
        col(TicketDelivery.status) == PENDING,
    )


def _lease_end(lease_seconds: float) -> ColumnElement[datetime]:
    return func.now() + timedelta(seconds=lease_seconds)


def _redact(message: str, target: Target) -> str:
    """Errors are stored and shown to operators: never let the token slip into them."""
    return message.replace(target.intake_token, "***")[:500]
