"""One push, end to end, in the request's transaction: critical samples, lifecycle, outbox.

Pushes of one kind are serialised with an advisory lock, so the lifecycle decisions
(services/lifecycle.py) never race. All writes are set-based: a 100 000-entry push costs a
handful of statements, not one per entry.

SQL here runs on the session's raw asyncpg connection (`driver_connection`, `$n` parameters)
rather than through SQLAlchemy: binding 100 000-element arrays through SQLAlchemy's bind
processing costs more than the statements themselves. Keep that for this bulk path only.
"""

from __future__ import annotations

import os
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.errors import Conflict, ErrorDetail
from wm_service import kinds
from wm_service.distribution.assignment import choose_for_push
from wm_service.kinds import KindSpec
from wm_service.schemas import PushResult, RuleSettings
from wm_service.services import correlation, lifecycle, maintenance
from wm_service.services import settings as settings_service
from wm_service.services.bulk import driver_connection
from wm_service.services.correlation import Correlated, GroupTicket
from wm_service.services.coverage import Coverage, Window, covering, stats_outside
from wm_service.services.critical import WindowStats, critical_samples, window_start
from wm_service.services.lifecycle import Decision, EntityFacts, Maintenance, OpenTicket
from wm_service.services.push_decode import Push
from wm_service.services.ticket_document import Place, build_document, dedup_key
from wm_service.services.topology import locate

_INSERT_PUSH = """
    INSERT INTO aggregation_push (kind, aggregation_id, generated_at, received_at, entries,
        critical_entries, opened, updated, cleared, unchanged, result)
    VALUES ($1, $2, $3, $4, $5, 0, 0, 0, 0, 0, '{}'::jsonb) RETURNING id
"""
_RECORD_RESULT = """
    UPDATE aggregation_push SET critical_entries = $2, opened = $3, updated = $4,
        cleared = $5, unchanged = $6, result = $7::jsonb
    WHERE id = $1
"""
_INSERT_SAMPLES = """
    INSERT INTO critical_sample (kind, entity_id, at, value, push_id)
    SELECT $1, s.entity_id, s.at, s.value, $5
    FROM unnest($2::text[], $3::timestamptz[], $4::float8[]) AS s(entity_id, at, value)
    ON CONFLICT DO NOTHING
    RETURNING entity_id
"""
_WINDOW_STATS = """
    SELECT entity_id, count(*) AS n, min(at) AS first_at, max(at) AS last_at, {worst} AS worst
    FROM critical_sample WHERE kind = $1 AND at > $2 GROUP BY entity_id
"""
# The worst value of a window, by the KPI's direction (KindSpec.lower_is_worse).
_WINDOW_STATS_BY_DIRECTION = {
    True: _WINDOW_STATS.format(worst="min(value)"),
    False: _WINDOW_STATS.format(worst="max(value)"),
}
_OPEN_TICKETS = """
    SELECT entity_id, id, revision, priority, maintenance_window_id
    FROM ticket WHERE kind = $1 AND state = 'open'
"""
_OPEN_GROUPS = """
    SELECT t.entity_id, t.id, t.revision, t.priority, t.maintenance_window_id,
           r.payload::text AS payload
    FROM ticket t JOIN ticket_revision r ON r.ticket_id = t.id AND r.revision = t.revision
    WHERE t.kind = $1 AND t.state = 'open'
"""
_GROUP_SUBSCRIBERS = """
    SELECT element_id, subscribers FROM topology_element
    WHERE element_id = ANY($1::text[]) AND subscribers IS NOT NULL
"""
_SAMPLES_OF = """
    SELECT entity_id, at, value FROM critical_sample
    WHERE kind = $1 AND at > $2 AND entity_id = ANY($3::text[])
"""
_INSERT_SUPPRESSED = """
    INSERT INTO maintenance_suppression (window_id, push_id, kind, entity_id, dedup_key, action,
        reason, priority, critical_samples, worst_value, decided_at)
    SELECT s.window_id, $2, $3::text, s.entity_id, $3::text || ':' || s.entity_id, s.action,
           s.reason, s.priority, s.samples, s.worst, $1::timestamptz
    FROM unnest($4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[],
                $10::float8[]) AS s(window_id, entity_id, action, reason, priority, samples, worst)
"""
_UPSERT_TICKETS = """
    INSERT INTO ticket AS t (id, kind, entity_id, dedup_key, open_key, state, category,
        revision, priority, subscribers, market, hub, opened_at, updated_at, cleared_at,
        maintenance_window_id)
    SELECT r.id, $2, r.entity_id, r.dedup_key,
           CASE WHEN r.action = 'clear' THEN NULL ELSE r.dedup_key END,
           CASE WHEN r.action = 'clear' THEN 'cleared' ELSE 'open' END,
           $3, r.revision, r.priority, r.subscribers, r.market, r.hub, $1::timestamptz,
           $1::timestamptz, CASE WHEN r.action = 'clear' THEN $1::timestamptz END, r.held_by
    FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::int[], $9::text[],
                $10::int[], $11::text[], $12::text[], $13::bigint[])
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
        SELECT * FROM unnest($3::uuid[], $4::int[], $5::text[], $6::text[], $7::text[],
                             $8::text[], $9::text[])
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


@dataclass(frozen=True, slots=True)
class Revision:
    """A decision that changes a ticket, with the ticket id and revision it is written as."""

    ticket_id: uuid.UUID
    revision: int
    decision: Decision


def _ticket_ids(count: int) -> Iterator[uuid.UUID]:
    """Random (version 4) UUIDs from one urandom call: uuid4() per ticket is a syscall each."""
    pool = os.urandom(16 * count)
    for i in range(count):
        yield uuid.UUID(bytes=pool[16 * i : 16 * i + 16], version=4)


def _note(reason: str, windows: dict[int, Window]) -> tuple[str, str] | None:
    """The note heading a revision that says why it is only a note (maintenance, grouping)."""
    if reason.startswith("grouped:"):
        return correlation.note(reason)
    return maintenance.note(reason, windows) if windows else None


# Tables a push fills, whose statistics are refreshed after a big one (StatisticsRefresher).
BULK_TABLES = ("ticket", "ticket_revision", "ticket_delivery")


def written(result: PushResult) -> int:
    """Revisions a push wrote (its outbox rows)."""
    counts = result.tickets
    return counts.opened + counts.updated + counts.cleared


def push_lock_key(kind: str) -> int:
    return zlib.crc32(f"wm-push:{kind}".encode())


async def process_push(
    session: AsyncSession,
    *,
    kind: str,
    push: Push,
    received_at: datetime,
    targets: Sequence[str] = (),
) -> tuple[PushResult, bool]:
    """Apply a validated push; returns its result and whether it was a replay of a known one.

    Each outbox row is written with its backend, chosen among the available `targets`
    (assignment.choose_for_push); without targets, or while older rows wait unassigned, the
    distribution assigns them.

    A push whose aggregation_id was already processed for this kind changes nothing and
    returns the stored result of the first time. A new push generated before the latest
    processed push of its kind is refused (409): decided after that push, it would judge
    entities by an older window and could reopen tickets that have since cleared.
    """
    db = await driver_connection(session)
    await db.execute("SELECT pg_advisory_xact_lock($1)", push_lock_key(kind))
    replayed = await _earlier_result(db, kind=kind, push=push)
    if replayed is not None:
        return replayed, True
    spec = kinds.get(kind)
    rules = await settings_service.get_rules(session)
    push_id: int = await db.fetchval(
        _INSERT_PUSH, kind, push.aggregation_id, push.generated_at, received_at, len(push.entries)
    )
    entities = await _entity_facts(session, db, spec=spec, rules=rules, push=push, push_id=push_id)
    entities, windows, coverage = await _with_maintenance(
        db,
        spec=spec,
        entities=entities,
        since=window_start(rules, push.generated_at),
        at=push.generated_at,
    )
    decisions = lifecycle.decide(entities, spec=spec, rules=rules)
    group_spec, correlated = await _correlate(
        db,
        spec=spec,
        rules=rules,
        push=push,
        entities=entities,
        decisions=decisions,
        coverage=coverage,
    )
    batches = [(spec, correlated.channels, {e.entity_id: e.place for e in entities})]
    if group_spec is not None:
        batches.append((group_spec, correlated.groups, correlated.places))
    for batch_spec, batch, places in batches:
        writing = _Written(batch_spec, places, rules, push, push_id, received_at, windows)
        await _write_revisions(session, db, _revisions(batch), writing, targets)
    decisions = correlated.channels + correlated.groups
    suppressed = await _write_suppressed(
        db, spec=spec, decisions=decisions, push_id=push_id, at=received_at
    )
    counts, critical_entries = lifecycle.tally(decisions)
    result = PushResult(
        aggregation_id=push.aggregation_id,
        kind=kind,
        generated_at=push.generated_at,
        received_at=received_at,
        entries=len(push.entries),
        critical_entries=critical_entries,
        tickets=counts,
        suppressed=suppressed,
    )
    await _record_result(db, push_id=push_id, result=result)
    return result, False


async def _record_result(db: asyncpg.Connection[Any], *, push_id: int, result: PushResult) -> None:
    counts = result.tickets
    await db.execute(
        _RECORD_RESULT,
        push_id,
        result.critical_entries,
        counts.opened,
        counts.updated,
        counts.cleared,
        counts.unchanged,
        result.model_dump_json(),
    )


async def _earlier_result(
    db: asyncpg.Connection[Any], *, kind: str, push: Push
) -> PushResult | None:
    """The stored result of this very push, if known; a conflict if a later one was applied."""
    stored = await db.fetchval(
        "SELECT result::text FROM aggregation_push WHERE kind = $1 AND aggregation_id = $2",
        kind,
        push.aggregation_id,
    )
    if stored is not None:
        return PushResult.model_validate_json(stored)
    latest = await db.fetchval(
        "SELECT max(generated_at) FROM aggregation_push WHERE kind = $1", kind
    )
    if latest is not None and push.generated_at < latest:
        raise Conflict(
            f"generated_at {push.generated_at.isoformat()} is older than the latest processed "
            f"{kind} push ({latest.isoformat()}); late pushes are not applied",
            details=[ErrorDetail("generated_at", f"older than {latest.isoformat()}")],
        )
    return None


async def _entity_facts(
    session: AsyncSession,
    db: asyncpg.Connection[Any],
    *,
    spec: KindSpec,
    rules: RuleSettings,
    push: Push,
    push_id: int,
) -> list[EntityFacts]:
    """Store the push's critical samples, then read what the rules need per present entity."""
    since = window_start(rules, push.generated_at)
    columns = critical_samples(push, spec=spec, rules=rules)
    fresh_rows = await db.fetch(
        _INSERT_SAMPLES, spec.name, columns.entity_ids, columns.ats, columns.values, push_id
    )
    with_new_samples = {row["entity_id"] for row in fresh_rows}
    # Samples that left the window can never count again. No upper bound: a sample up to
    # the clock skew after T counts in its own push (later pushes are refused), so it is
    # never stored by one push and counted only by the next, which could clear a ticket
    # and reopen it 15 minutes later.
    await db.execute("DELETE FROM critical_sample WHERE kind = $1 AND at <= $2", spec.name, since)
    stats_sql = _WINDOW_STATS_BY_DIRECTION[spec.lower_is_worse]
    stats = {
        row["entity_id"]: WindowStats(row["n"], row["first_at"], row["last_at"], row["worst"])
        for row in await db.fetch(stats_sql, spec.name, since)
    }
    open_tickets = {
        row["entity_id"]: OpenTicket(
            row["id"], row["revision"], row["priority"], row["maintenance_window_id"]
        )
        for row in await db.fetch(_OPEN_TICKETS, spec.name)
    }
    entries = {entry.entity_id: entry for entry in push.entries}
    # Entities absent from the push are left as they are: only present ones are decided.
    concerned = [e for e in entries if e in stats or e in open_tickets]
    places = await locate(session, entries=(entries[e] for e in concerned))
    return [
        EntityFacts(e, stats.get(e), open_tickets.get(e), places[e], e in with_new_samples)
        for e in concerned
    ]


async def _with_maintenance(
    db: asyncpg.Connection[Any],
    *,
    spec: KindSpec,
    entities: list[EntityFacts],
    since: datetime,
    at: datetime,
) -> tuple[list[EntityFacts], dict[int, Window], Coverage]:
    """The facts with what maintenance windows change: covered now, samples left out.

    Samples inside a window that covers the entity (the windows as they are now) do not
    count; their statistics are recomputed from the samples of those entities only.
    """
    noted = {e.ticket.held_by for e in entities if e.ticket and e.ticket.held_by is not None}
    windows = await maintenance.load_for_push(db, since=since, at=at, noted=noted)
    coverage = Coverage(windows.live, since=since, at=at)
    if not coverage:
        return entities, windows.by_id, coverage
    covers = {e.entity_id: c for e in entities if (c := coverage.of(e.entity_id, e.place))}
    samples: dict[str, list[tuple[datetime, float]]] = {e: [] for e in covers}
    for row in await db.fetch(_SAMPLES_OF, spec.name, since, list(covers)):
        samples[row["entity_id"]].append((row["at"], row["value"]))
    out = []
    for facts in entities:
        found = covers.get(facts.entity_id)
        if found:
            stats, excluded_by = stats_outside(
                samples[facts.entity_id], found, lower_is_worse=spec.lower_is_worse
            )
            touched = Maintenance(covering(found, at), excluded_by, facts.stats)
            facts = replace(facts, stats=stats, maintenance=touched)
        out.append(facts)
    return out, windows.by_id, coverage


async def _write_suppressed(
    db: asyncpg.Connection[Any],
    *,
    spec: KindSpec,
    decisions: list[Decision],
    push_id: int,
    at: datetime,
) -> int:
    """One maintenance_suppression row per decision a window held back; returns how many."""
    held = [(d, d.held) for d in decisions if d.action == "suppressed" and d.held is not None]
    if not held:
        return 0
    await db.execute(
        _INSERT_SUPPRESSED,
        at,
        push_id,
        spec.name,
        [int(d.reason.partition(":")[2]) for d, _ in held],
        [d.entity_id for d, _ in held],
        [raw.action for _, raw in held],
        [raw.reason for _, raw in held],
        [raw.priority for _, raw in held],
        [raw.stats.count if raw.stats else 0 for _, raw in held],
        [raw.stats.worst_value if raw.stats else None for _, raw in held],
    )
    return len(held)


async def _correlate(
    db: asyncpg.Connection[Any],
    *,
    spec: KindSpec,
    rules: RuleSettings,
    push: Push,
    entities: list[EntityFacts],
    decisions: list[Decision],
    coverage: Coverage,
) -> tuple[KindSpec | None, Correlated]:
    """Service-group correlation, when the kind is grouped and it is on or has open groups.

    Turned off (group_min_channels 0), open group tickets still follow their channels until
    they clear: switching it off never strands a ticket.
    """
    group_spec = kinds.grouping(spec.name)
    if group_spec is None:
        return None, Correlated(decisions)
    rows = await db.fetch(_OPEN_GROUPS, group_spec.name)
    if rules.group_min_channels == 0 and not rows:
        return None, Correlated(decisions)
    open_groups = {row["entity_id"]: _group_ticket(row) for row in rows}
    listed = {c for group in open_groups.values() for c in group.channels}
    in_push = {e.entity_id for e in push.entries if e.entity_id in listed} if listed else set()
    groups = list({e.place.service_group for e in entities if e.place.service_group})
    subscribers = {
        row["element_id"]: row["subscribers"] for row in await db.fetch(_GROUP_SUBSCRIBERS, groups)
    }
    return group_spec, correlation.correlate(
        entities,
        decisions,
        open_groups=open_groups,
        in_push=in_push,
        group_subscribers=subscribers,
        spec=group_spec,
        rules=rules,
        window_over=lambda key, place: covering(coverage.of(key, place), push.generated_at),
    )


def _group_ticket(row: asyncpg.Record) -> GroupTicket:
    """An open group ticket from its row: the channels and place its latest revision stated."""
    payload = msgspec.json.decode(row["payload"])
    location = payload["location"]
    place = Place(
        location.get("market"),
        location.get("hub"),
        location.get("ccap"),
        location.get("service_group"),
        None,
        payload.get("subscribers"),
    )
    channels = {c["entity_id"]: c["worst_value"] for c in payload.get("channels", [])}
    ticket = OpenTicket(row["id"], row["revision"], row["priority"], row["maintenance_window_id"])
    return GroupTicket(ticket, channels, place)


def _revisions(decisions: list[Decision]) -> list[Revision]:
    """The decisions that change a ticket: a new ticket at 1, or the open one's next revision."""
    new_ids = _ticket_ids(sum(1 for d in decisions if d.action == "open"))
    return [
        Revision(next(new_ids), 1, d)
        if d.ticket is None
        else Revision(d.ticket.id, d.ticket.revision + 1, d)
        for d in decisions
        if d.action not in ("unchanged", "suppressed")
    ]


@dataclass(frozen=True, slots=True)
class _Written:
    """What every revision of one kind in one push is written with."""

    spec: KindSpec
    places: dict[str, Place]
    rules: RuleSettings
    push: Push
    push_id: int
    built_at: datetime
    windows: dict[int, Window]


async def _write_revisions(
    session: AsyncSession,
    db: asyncpg.Connection[Any],
    revisions: list[Revision],
    w: _Written,
    targets: Sequence[str],
) -> None:
    """Tickets, their revisions and one outbox row per revision, in two statements."""
    if not revisions:
        return
    payloads = [msgspec.json.encode(d).decode() for d in _documents(revisions, w)]
    spec, places = w.spec, w.places
    decisions = [r.decision for r in revisions]
    ticket_ids = [r.ticket_id for r in revisions]
    numbers = [r.revision for r in revisions]
    actions = [d.action for d in decisions]
    priorities = [d.priority for d in decisions]
    keys = [dedup_key(spec.name, d.entity_id) for d in decisions]
    backends = await _backends(session, db, keys, targets)
    await db.execute(
        _UPSERT_TICKETS,
        w.built_at,
        spec.name,
        spec.category,
        ticket_ids,
        [d.entity_id for d in decisions],
        keys,
        actions,
        numbers,
        priorities,
        [places[d.entity_id].subscribers for d in decisions],
        [places[d.entity_id].market for d in decisions],
        [places[d.entity_id].hub for d in decisions],
        [d.held_by for d in decisions],
    )
    await db.execute(
        _INSERT_REVISIONS_AND_OUTBOX,
        w.built_at,
        w.push_id,
        ticket_ids,
        numbers,
        actions,
        priorities,
        payloads,
        keys,
        [backends.get(key) for key in keys],
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


def _documents(revisions: list[Revision], w: _Written) -> Iterator[dict[str, Any]]:
    spec, rules = w.spec, w.rules
    # A grouped kind is judged by its members' thresholds.
    threshold = rules.thresholds[spec.grouped_from or spec.name].critical
    for r in revisions:
        decision = r.decision
        yield build_document(
            ticket_id=r.ticket_id,
            spec=spec,
            entity_id=decision.entity_id,
            revision=r.revision,
            action=decision.action,
            reason=decision.reason,
            ticket_priority=decision.priority,
            place=w.places[decision.entity_id],
            stats=decision.stats,
            threshold=threshold,
            window_hours=rules.window_hours,
            aggregation_id=w.push.aggregation_id,
            generated_at=w.built_at,
            note=_note(decision.reason, w.windows),
            channels=decision.channels,
        )
