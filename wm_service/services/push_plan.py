"""A push's decided revisions: written in the push's transaction, or in chunks after it.

The push (services/ingestion.py) decides under its kind's lock what happens to each ticket;
`plan` turns the decisions that change one into PlannedRevisions, with everything writing
it needs (ticket id and number, place, window statistics, note) fixed at that moment. Up to
`chunk_size` of them are written in the push's own transaction, as the push answers. More
are stored in that transaction as push_plan chunks instead, and the push answers at once
(20 000 new tickets: ~1 s instead of ~3): PushApplier writes them a chunk per transaction,
under the kind's lock, deleting the chunk with the revisions it wrote, so a chunk is written
exactly once whatever stops when, and the distribution starts on the first while the next is
written. The next push of the kind writes what is left first (its decisions read the
tickets); an applier that starts finishes what a crash left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.array_text import int_array, text_array
from ticketing_common.db import StatisticsRefresher, session_scope
from ticketing_common.errors import log_retried_failure
from ticketing_common.waits import Bell, LoopWorker
from wm_service import kinds
from wm_service.distribution.assignment import choose_for_push
from wm_service.kinds import KindSpec
from wm_service.services.bulk import driver_connection
from wm_service.services.critical import WindowStats
from wm_service.services.lifecycle import Decision
from wm_service.services.ticket_document import Place, build_document, dedup_key

log = logging.getLogger(__name__)

_scope = contextlib.asynccontextmanager(session_scope)


class PlannedRevision(msgspec.Struct, array_like=True, gc=False):
    """One revision a push decided, with all its document is built from."""

    ticket_id: uuid.UUID
    revision: int
    entity_id: str
    action: str
    reason: str
    priority: str
    held_by: int | None
    place: Place
    stats: WindowStats | None
    note: tuple[str, str] | None
    channels: tuple[tuple[str, float | None], ...] | None


class PlanChunk(msgspec.Struct, array_like=True, gc=False):
    """Revisions of one kind of ticket (the push's, or its service-group kind), with what
    every one of them is written with."""

    kind: str
    threshold: float
    window_hours: int
    aggregation_id: str
    built_at: datetime
    revisions: list[PlannedRevision]

    def split(self, size: int) -> list[PlanChunk]:
        return [
            msgspec.structs.replace(self, revisions=self.revisions[start : start + size])
            for start in range(0, len(self.revisions), size)
        ]


def push_lock_key(kind: str) -> int:
    return zlib.crc32(f"wm-push:{kind}".encode())


async def lock_kind(db: asyncpg.Connection[Any], kind: str) -> None:
    """Serialise, until the transaction ends, everything that decides or writes `kind`'s
    tickets: its pushes and the writing of their stored chunks."""
    await db.execute("SELECT pg_advisory_xact_lock($1)", push_lock_key(kind))


def written_later(revisions: int, chunk_size: int) -> bool:
    """Whether a push of `revisions` stores them to be written after it answers."""
    return revisions > chunk_size


_ENCODER = msgspec.json.Encoder()
_CHUNK_DECODER = msgspec.json.Decoder(PlanChunk)


def _ticket_ids(count: int) -> Iterator[uuid.UUID]:
    """Random (version 4) UUIDs from one urandom call: uuid4() per ticket is a syscall each."""
    pool = os.urandom(16 * count)
    for i in range(count):
        yield uuid.UUID(bytes=pool[16 * i : 16 * i + 16], version=4)


def plan(
    decisions: Sequence[Decision],
    *,
    kind: str,
    places: dict[str, Place],
    threshold: float,
    window_hours: int,
    aggregation_id: str,
    built_at: datetime,
    note: Callable[[str], tuple[str, str] | None],
) -> PlanChunk:
    """The decisions that change a ticket, as revisions: a new ticket at 1, or the open
    one's next revision. `note(reason)` heads a revision that is only a note."""
    new_ids = _ticket_ids(sum(1 for d in decisions if d.action == "open"))
    revisions = []
    for d in decisions:
        if d.action in ("unchanged", "suppressed"):
            continue
        ticket_id, number = (
            (next(new_ids), 1) if d.ticket is None else (d.ticket.id, d.ticket.revision + 1)
        )
        revisions.append(
            PlannedRevision(
                ticket_id=ticket_id,
                revision=number,
                entity_id=d.entity_id,
                action=d.action,
                reason=d.reason,
                priority=d.priority,
                held_by=d.held_by,
                place=places[d.entity_id],
                stats=d.stats,
                note=note(d.reason),
                channels=d.channels,
            )
        )
    return PlanChunk(kind, threshold, window_hours, aggregation_id, built_at, revisions)


_UPSERT_TICKETS = """
    INSERT INTO ticket AS t (id, kind, entity_id, dedup_key, open_key, state, category,
        revision, priority, subscribers, market, hub, opened_at, updated_at, cleared_at,
        maintenance_window_id)
    SELECT r.id, $2, r.entity_id, r.dedup_key,
           CASE WHEN r.action = 'clear' THEN NULL ELSE r.dedup_key END,
           CASE WHEN r.action = 'clear' THEN 'cleared' ELSE 'open' END,
           $3, r.revision, r.priority, r.subscribers, r.market, r.hub, $1::timestamptz,
           $1::timestamptz, CASE WHEN r.action = 'clear' THEN $1::timestamptz END, r.held_by
    FROM unnest($4::uuid[], $5::text::text[], $6::text::text[], $7::text::text[],
                $8::text::int[], $9::text::text[], $10::text::int[], $11::text::text[],
                $12::text::text[], $13::text::bigint[])
         AS r(id, entity_id, dedup_key, action, revision, priority, subscribers, market, hub,
              held_by)
    ON CONFLICT (id) DO UPDATE SET
        open_key = EXCLUDED.open_key, state = EXCLUDED.state, revision = EXCLUDED.revision,
        priority = EXCLUDED.priority, subscribers = EXCLUDED.subscribers,
        market = EXCLUDED.market, hub = EXCLUDED.hub, updated_at = EXCLUDED.updated_at,
        cleared_at = EXCLUDED.cleared_at, maintenance_window_id = EXCLUDED.maintenance_window_id
"""
_INSERT_REVISIONS_AND_OUTBOX = """
    WITH input AS (
        SELECT * FROM unnest($3::uuid[], $4::text::int[], $5::text::text[],
                             $6::text::text[], $7::text[], $8::text::text[],
                             $9::text::text[])
            AS r(ticket_id, revision, action, priority, payload, dedup_key, backend_name)
    ), revision AS (
        INSERT INTO ticket_revision (ticket_id, revision, action, priority, push_id,
                                     payload, created_at)
        SELECT ticket_id, revision, action, priority, $2::bigint, payload::json,
               $1::timestamptz
        FROM input
        -- Only the keys: returning the documents would spill them to disk (33 MB at 20 000).
        RETURNING id, ticket_id, revision
    )
    INSERT INTO ticket_delivery (revision_id, ticket_id, dedup_key, revision, status,
                                 attempts, created_at, backend_name, assigned_at)
    SELECT revision.id, revision.ticket_id, input.dedup_key, revision.revision, 'pending', 0,
           $1::timestamptz, input.backend_name,
           CASE WHEN input.backend_name IS NOT NULL THEN now() END
    FROM revision JOIN input USING (ticket_id, revision)
"""
_ANY_UNASSIGNED = (
    "SELECT EXISTS (SELECT 1 FROM ticket_delivery WHERE status = 'pending' "
    "AND backend_name IS NULL)"
)
_STORE = """
    INSERT INTO push_plan (push_id, push_kind, revisions, plan, created_at)
    SELECT $1, $2, r.revisions, r.plan, $3
    FROM unnest($4::int[], $5::bytea[]) WITH ORDINALITY AS r(revisions, plan, n)
    ORDER BY r.n
"""
_NEXT_STORED = "SELECT id, push_id, plan FROM push_plan WHERE push_kind = $1 ORDER BY id LIMIT 1"


async def write(
    session: AsyncSession,
    db: asyncpg.Connection[Any],
    chunk: PlanChunk,
    *,
    push_id: int,
    targets: Sequence[str],
) -> None:
    """Tickets, their revisions and one outbox row per revision, in two statements."""
    revisions = chunk.revisions
    if not revisions:
        return
    spec = kinds.get(chunk.kind)
    payloads = [_ENCODER.encode(_document(r, chunk, spec)).decode() for r in revisions]
    ticket_ids = [r.ticket_id for r in revisions]
    keys = [dedup_key(spec.name, r.entity_id) for r in revisions]
    backends = await _backends(session, db, keys, targets)
    # Columns as array text (ticketing_common/array_text.py); the ids and documents as lists.
    numbers = int_array([r.revision for r in revisions])
    actions = text_array([r.action for r in revisions])
    priorities = text_array([r.priority for r in revisions])
    key_array = text_array(keys)
    await db.execute(
        _UPSERT_TICKETS,
        chunk.built_at,
        spec.name,
        spec.category,
        ticket_ids,
        text_array([r.entity_id for r in revisions]),
        key_array,
        actions,
        numbers,
        priorities,
        int_array([r.place.subscribers for r in revisions]),
        text_array([r.place.market for r in revisions]),
        text_array([r.place.hub for r in revisions]),
        int_array([r.held_by for r in revisions]),
    )
    await db.execute(
        _INSERT_REVISIONS_AND_OUTBOX,
        chunk.built_at,
        push_id,
        ticket_ids,
        numbers,
        actions,
        priorities,
        payloads,
        key_array,
        text_array([backends.get(key) for key in keys]),
    )


def _document(r: PlannedRevision, chunk: PlanChunk, spec: KindSpec) -> dict[str, Any]:
    return build_document(
        ticket_id=r.ticket_id,
        spec=spec,
        entity_id=r.entity_id,
        revision=r.revision,
        action=r.action,
        reason=r.reason,
        ticket_priority=r.priority,
        place=r.place,
        stats=r.stats,
        threshold=chunk.threshold,
        window_hours=chunk.window_hours,
        aggregation_id=chunk.aggregation_id,
        generated_at=chunk.built_at,
        note=r.note,
        channels=r.channels,
    )


async def _backends(
    session: AsyncSession, db: asyncpg.Connection[Any], keys: list[str], targets: Sequence[str]
) -> dict[str, str]:
    """Each key's backend, chosen as the distribution would (one update of every new outbox
    row saved). Not while any older row waits unassigned (no backend was available, or it
    was taken back): it may be of the same key and is assigned later, by the distribution,
    perhaps elsewhere; the new rows wait with it so a key's revisions stay together."""
    if not targets or await db.fetchval(_ANY_UNASSIGNED):
        return {}
    return await choose_for_push(session, keys, targets)


async def store(
    db: asyncpg.Connection[Any],
    chunks: Sequence[PlanChunk],
    *,
    push_id: int,
    push_kind: str,
    at: datetime,
) -> None:
    """Keep `chunks` to be written after the push's commit, in this order."""
    await db.execute(
        _STORE,
        push_id,
        push_kind,
        at,
        [len(c.revisions) for c in chunks],
        [_ENCODER.encode(c) for c in chunks],
    )


async def to_write(db: asyncpg.Connection[Any], push_ids: Sequence[int]) -> dict[int, int]:
    """Revisions still stored to be written, by push (pushes with none left out)."""
    rows = await db.fetch(
        "SELECT push_id, sum(revisions)::int AS n FROM push_plan "
        "WHERE push_id = ANY($1::bigint[]) GROUP BY push_id",
        list(push_ids),
    )
    return {row["push_id"]: row["n"] for row in rows}


async def write_stored(
    session: AsyncSession,
    db: asyncpg.Connection[Any],
    *,
    push_kind: str,
    targets: Sequence[str],
    limit: int | None = None,
) -> int:
    """Write the stored chunks of `push_kind`'s pushes, oldest first, at most `limit` of
    them; the revisions written. The caller holds the kind's push lock."""
    written = chunks = 0
    while limit is None or chunks < limit:
        row = await db.fetchrow(_NEXT_STORED, push_kind)
        if row is None:
            break
        chunk = _CHUNK_DECODER.decode(row["plan"])
        await write(session, db, chunk, push_id=row["push_id"], targets=targets)
        await db.execute("DELETE FROM push_plan WHERE id = $1", row["id"])
        written += len(chunk.revisions)
        chunks += 1
    return written


class PushApplier(LoopWorker):
    """Writes stored chunks, one per transaction, when woken after a push and every
    `poll_seconds` (a restart's leftovers), until stopped."""

    task_name = "wm-push-applier"

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        targets: Callable[[AsyncSession], Awaitable[list[str]]],
        written: Callable[[], None],
        statistics: StatisticsRefresher,
        poll_seconds: float = 5.0,
    ) -> None:
        """`targets` are the backends new rows may go to (the distribution's), `written` is
        called after each chunk's commit (to wake the distribution)."""
        self._sessionmaker = sessionmaker
        self._targets = targets
        self._written = written
        self._statistics = statistics
        self._poll_seconds = poll_seconds
        self._bell = Bell()

    def wake(self) -> None:
        self._bell.ring()

    async def apply_stored(self) -> int:
        """Write every stored chunk, a transaction each; the revisions written. A kind whose
        chunk fails is left for the next pass (logged) while the other kinds go on: one
        kind's trouble must not hold every other kind's tickets back."""
        async with _scope(self._sessionmaker) as session:
            db = await driver_connection(session)
            rows = await db.fetch("SELECT DISTINCT push_kind FROM push_plan ORDER BY push_kind")
        return sum([await self._apply_kind(row["push_kind"]) for row in rows])

    async def _apply_kind(self, push_kind: str) -> int:
        """Write `push_kind`'s stored chunks until none is left or one fails (logged: it is
        tried again next pass); the revisions written."""
        total = 0
        while True:
            try:
                async with _scope(self._sessionmaker) as session:
                    db = await driver_connection(session)
                    await lock_kind(db, push_kind)
                    targets = await self._targets(session)
                    written = await write_stored(
                        session, db, push_kind=push_kind, targets=targets, limit=1
                    )
            except Exception:
                log_retried_failure(
                    log,
                    "writing a big push's planned revisions failed; retrying",
                    extra={"kind": push_kind},
                )
                return total
            if not written:
                return total
            total += written
            self._written()

    async def _loop(self) -> None:
        while True:
            try:
                written = await self.apply_stored()
                if written:
                    log.info("wrote %d revision(s) stored by big pushes", written)
                    if await self._statistics.due(written):
                        await self._statistics.refresh()
            except Exception:
                # The database itself (listing the kinds); each kind's failures are logged above.
                log_retried_failure(log, "writing a big push's planned revisions failed; retrying")
            await self._bell.wait(self._poll_seconds)
