"""One push, end to end, in the request's transaction: critical samples, lifecycle, outbox.

Pushes of one kind are serialised with an advisory lock, so the lifecycle decisions below
never race. All writes are set-based (unnest arrays on the session's asyncpg connection): a
100 000-entry push costs a handful of statements, not one per entry.
"""

from __future__ import annotations

import os
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import msgspec
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.errors import Conflict, ErrorDetail
from wm_service import kinds
from wm_service.kinds import KindSpec
from wm_service.schemas import PushResult, RuleSettings, TicketCounts
from wm_service.services import settings as settings_service
from wm_service.services.bulk import driver_connection
from wm_service.services.critical import (
    WindowStats,
    critical_samples,
    is_critical,
    window_start,
)
from wm_service.services.push_decode import Push
from wm_service.services.ticket_document import (
    Place,
    build_document,
    dedup_key,
    is_worse,
    priority,
)
from wm_service.services.topology import locate


@dataclass(frozen=True)
class OpenTicket:
    id: uuid.UUID
    revision: int
    priority: str


@dataclass
class Revision:
    """A revision decided for one entity, before it is written."""

    ticket_id: uuid.UUID
    entity_id: str
    revision: int
    action: str
    priority: str
    stats: WindowStats | None


def _ticket_ids(count: int) -> Iterator[uuid.UUID]:
    """Random (version 4) UUIDs from one urandom call: uuid4() per ticket is a syscall each."""
    pool = os.urandom(16 * count)
    for i in range(count):
        yield uuid.UUID(bytes=pool[16 * i : 16 * i + 16], version=4)


def push_lock_key(kind: str) -> int:
    return zlib.crc32(f"wm-push:{kind}".encode())


async def process_push(
    session: AsyncSession, *, kind: str, push: Push, received_at: datetime
) -> tuple[PushResult, bool]:
    """Apply a validated push; returns its result and whether it was a replay of a known one.

    A push whose aggregation_id was already processed for this kind changes nothing and
    returns the stored result of the first time. A new push generated before the latest
    processed push of its kind is refused (409): decided after that push, it would judge
    entities by an older window and could reopen tickets that have since cleared.
    """
    db = await driver_connection(session)
    await db.execute("SELECT pg_advisory_xact_lock($1)", push_lock_key(kind))
    stored = await db.fetchval(
        "SELECT result::text FROM aggregation_push WHERE kind = $1 AND aggregation_id = $2",
        kind,
        push.aggregation_id,
    )
    if stored is not None:
        return PushResult.model_validate_json(stored), True
    latest = await db.fetchval(
        "SELECT max(generated_at) FROM aggregation_push WHERE kind = $1", kind
    )
    if latest is not None and push.generated_at < latest:
        raise Conflict(
            f"generated_at {push.generated_at.isoformat()} is older than the latest processed "
            f"{kind} push ({latest.isoformat()}); late pushes are not applied",
            details=[ErrorDetail("generated_at", f"older than {latest.isoformat()}")],
        )

    spec = kinds.get(kind)
    rules = await settings_service.get_rules(session)
    push_id: int = await db.fetchval(
        """
        INSERT INTO aggregation_push (kind, aggregation_id, generated_at, received_at, entries,
            critical_entries, opened, updated, cleared, unchanged, result)
        VALUES ($1, $2, $3, $4, $5, 0, 0, 0, 0, 0, '{}'::jsonb) RETURNING id
        """,
        kind,
        push.aggregation_id,
        push.generated_at,
        received_at,
        len(push.entries),
    )
    since = window_start(rules, push.generated_at)
    columns = critical_samples(push, spec=spec, rules=rules)
    fresh_rows = await db.fetch(
        """
        INSERT INTO critical_sample (kind, entity_id, at, value, push_id)
        SELECT $1, s.entity_id, s.at, s.value, $5
        FROM unnest($2::text[], $3::timestamptz[], $4::float8[]) AS s(entity_id, at, value)
        ON CONFLICT DO NOTHING
        RETURNING entity_id
        """,
        kind,
        columns.entity_ids,
        columns.ats,
        columns.values,
        push_id,
    )
    with_new_samples = {row["entity_id"] for row in fresh_rows}
    # Samples that left the window can never count again. No upper bound: a sample up to
    # the clock skew after T counts in its own push (later pushes are refused), so it is
    # never stored by one push and counted only by the next, which could clear a ticket
    # and reopen it 15 minutes later.
    await db.execute("DELETE FROM critical_sample WHERE kind = $1 AND at <= $2", kind, since)
    worst = "min(value)" if spec.lower_is_worse else "max(value)"
    stats_rows = await db.fetch(
        f"""
        SELECT entity_id, count(*) AS n, min(at) AS first_at, max(at) AS last_at,
               {worst} AS worst
        FROM critical_sample WHERE kind = $1 AND at > $2 GROUP BY entity_id
        """,  # noqa: S608  (worst is one of two literals above)
        kind,
        since,
    )
    stats = {
        row["entity_id"]: WindowStats(row["n"], row["first_at"], row["last_at"], row["worst"])
        for row in stats_rows
    }
    open_rows = await db.fetch(
        "SELECT entity_id, id, revision, priority FROM ticket WHERE kind = $1 AND state = 'open'",
        kind,
    )
    open_tickets = {
        row["entity_id"]: OpenTicket(row["id"], row["revision"], row["priority"])
        for row in open_rows
    }

    entries = {entry.entity_id: entry for entry in push.entries}
    # Entities absent from the push are left as they are: only present ones are decided.
    concerned = [e for e in entries if e in stats or e in open_tickets]
    places = await locate(session, entries=(entries[e] for e in concerned))
    revisions: list[Revision] = []
    new_ids = _ticket_ids(sum(1 for e in concerned if e not in open_tickets))
    counts = {"opened": 0, "updated": 0, "cleared": 0, "unchanged": 0}
    critical_entries = 0
    for entity_id in concerned:
        entity_stats = stats.get(entity_id)
        ticket = open_tickets.get(entity_id)
        if is_critical(entity_stats, rules):
            critical_entries += 1
            assert entity_stats is not None
            wanted = priority(
                spec,
                subscribers=places[entity_id].subscribers,
                worst_value=entity_stats.worst_value,
            )
            if ticket is None:
                revisions.append(
                    Revision(next(new_ids), entity_id, 1, "open", wanted, entity_stats)
                )
                counts["opened"] += 1
            elif entity_id in with_new_samples or is_worse(wanted, ticket.priority):
                # Priority only ever rises within one ticket: a smaller audience later does
                # not downgrade work already dispatched.
                kept = wanted if is_worse(wanted, ticket.priority) else ticket.priority
                revisions.append(
                    Revision(
                        ticket.id, entity_id, ticket.revision + 1, "update", kept, entity_stats
                    )
                )
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
        elif ticket is not None:
            revisions.append(
                Revision(ticket.id, entity_id, ticket.revision + 1, "clear", ticket.priority, None)
            )
            counts["cleared"] += 1

    await _write_revisions(
        session,
        spec=spec,
        revisions=revisions,
        places=places,
        rules=rules,
        push=push,
        push_id=push_id,
        built_at=received_at,
    )
    result = PushResult(
        aggregation_id=push.aggregation_id,
        kind=kind,
        generated_at=push.generated_at,
        received_at=received_at,
        entries=len(push.entries),
        critical_entries=critical_entries,
        tickets=TicketCounts(**counts),
    )
    await db.execute(
        """
        UPDATE aggregation_push SET critical_entries = $2, opened = $3, updated = $4,
            cleared = $5, unchanged = $6, result = $7::jsonb
        WHERE id = $1
        """,
        push_id,
        critical_entries,
        counts["opened"],
        counts["updated"],
        counts["cleared"],
        counts["unchanged"],
        result.model_dump_json(),
    )
    return result, False


async def _write_revisions(
    session: AsyncSession,
    *,
    spec: KindSpec,
    revisions: list[Revision],
    places: dict[str, Place],
    rules: RuleSettings,
    push: Push,
    push_id: int,
    built_at: datetime,
) -> None:
    """Tickets, their revisions and one outbox row per revision, in three statements."""
    if not revisions:
        return
    db = await driver_connection(session)
    documents = [
        build_document(
            ticket_id=r.ticket_id,
            spec=spec,
            entity_id=r.entity_id,
            revision=r.revision,
            action=r.action,
            ticket_priority=r.priority,
            place=places[r.entity_id],
            stats=r.stats,
            threshold=rules.thresholds[spec.name].critical,
            window_hours=rules.window_hours,
            aggregation_id=push.aggregation_id,
            generated_at=built_at,
        )
        for r in revisions
    ]
    payloads = [msgspec.json.encode(d).decode() for d in documents]
    subscribers = [places[r.entity_id].subscribers for r in revisions]
    category = documents[0]["category"]
    await db.execute(
        """
        INSERT INTO ticket AS t (id, kind, entity_id, dedup_key, open_key, state, category,
            revision, priority, subscribers, payload, opened_at, updated_at, cleared_at)
        SELECT r.id, $2, r.entity_id, r.dedup_key,
               CASE WHEN r.action = 'clear' THEN NULL ELSE r.dedup_key END,
               CASE WHEN r.action = 'clear' THEN 'cleared' ELSE 'open' END,
               $3, r.revision, r.priority, r.subscribers, r.payload::jsonb, $1::timestamptz,
               $1::timestamptz, CASE WHEN r.action = 'clear' THEN $1::timestamptz END
        FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::int[], $9::text[],
                    $10::int[], $11::text[])
             AS r(id, entity_id, dedup_key, action, revision, priority, subscribers, payload)
        ON CONFLICT (id) DO UPDATE SET
            open_key = EXCLUDED.open_key, state = EXCLUDED.state, revision = EXCLUDED.revision,
            priority = EXCLUDED.priority, subscribers = EXCLUDED.subscribers,
            payload = EXCLUDED.payload, updated_at = EXCLUDED.updated_at,
            cleared_at = EXCLUDED.cleared_at
        """,
        built_at,
        spec.name,
        category,
        [r.ticket_id for r in revisions],
        [r.entity_id for r in revisions],
        [dedup_key(spec.name, r.entity_id) for r in revisions],
        [r.action for r in revisions],
        [r.revision for r in revisions],
        [r.priority for r in revisions],
        subscribers,
        payloads,
    )
    await db.execute(
        """
        WITH input AS (
            SELECT * FROM unnest($3::uuid[], $4::int[], $5::text[], $6::text[], $7::text[])
                AS r(ticket_id, revision, action, priority, payload)
        ), revision AS (
            INSERT INTO ticket_revision (ticket_id, revision, action, priority, push_id,
                                         payload, created_at)
            SELECT ticket_id, revision, action, priority, $2::bigint, payload::jsonb,
                   $1::timestamptz
            FROM input
            RETURNING id, ticket_id, revision, payload
        )
        INSERT INTO ticket_delivery (revision_id, ticket_id, dedup_key, revision, payload,
                                     status, attempts, created_at)
        SELECT revision.id, revision.ticket_id, revision.payload ->> 'dedup_key',
               revision.revision, revision.payload, 'pending', 0, $1::timestamptz
        FROM revision
        """,
        built_at,
        push_id,
        [r.ticket_id for r in revisions],
        [r.revision for r in revisions],
        [r.action for r in revisions],
        [r.priority for r in revisions],
        payloads,
    )
