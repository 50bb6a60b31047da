"""One push, end to end, in the request's transaction: critical samples, lifecycle, outbox.

Pushes of one kind are serialised with an advisory lock, so the lifecycle decisions
(services/lifecycle.py) never race. All writes are set-based: a 100 000-entry push costs a
handful of statements, not one per entry.

SQL here runs on the session's raw asyncpg connection (`driver_connection`, `$n` parameters)
rather than through SQLAlchemy: binding 100 000-element arrays through SQLAlchemy's bind
processing costs more than the statements themselves. Keep that for this bulk path only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from msgspec.structs import replace
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.array_text import text_array
from ticketing_common.errors import Conflict, ErrorDetail
from wm_service import kinds
from wm_service.kinds import KindSpec
from wm_service.schemas import PushResult, RuleSettings
from wm_service.services import correlation, lifecycle, maintenance, push_plan
from wm_service.services import settings as settings_service
from wm_service.services.bulk import driver_connection
from wm_service.services.correlation import Correlated, GroupTicket
from wm_service.services.coverage import Coverage, Window, covering, stats_outside
from wm_service.services.critical import WindowStats, critical_samples, window_start
from wm_service.services.lifecycle import Decision, EntityFacts, Maintenance, OpenTicket
from wm_service.services.push_decode import Push
from wm_service.services.ticket_document import Place
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
    -- (Entity ids bound as array text, cast from text: ticketing_common/array_text.py.)
    FROM unnest($2::text::text[], $3::timestamptz[], $4::float8[]) AS s(entity_id, at, value)
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


async def process_push(
    session: AsyncSession,
    *,
    kind: str,
    push: Push,
    received_at: datetime,
    targets: Sequence[str] = (),
    chunk_size: int = 2000,
) -> tuple[PushResult, bool]:
    """Apply a validated push; returns its result and whether it was a replay of a known one.

    Each outbox row is written with its backend, chosen among the available `targets`
    (assignment.choose_for_push); without targets, or while older rows wait unassigned, the
    distribution assigns them. More than `chunk_size` revisions are stored to be written
    after the commit (services/push_plan.py); what an earlier push stored is written first.

    A push whose aggregation_id was already processed for this kind changes nothing and
    returns the stored result of the first time. A new push generated before the latest
    processed push of its kind is refused (409): decided after that push, it would judge
    entities by an older window and could reopen tickets that have since cleared.
    """
    db = await driver_connection(session)
    await push_plan.lock_kind(db, kind)
    replayed = await _earlier_result(db, kind=kind, push=push)
    if replayed is not None:
        return replayed, True
    # The decisions below read the tickets: a big push's revisions still stored come first.
    await push_plan.write_stored(session, db, push_kind=kind, targets=targets)
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
    plans = [
        push_plan.plan(
            batch,
            kind=batch_spec.name,
            places=places,
            # A grouped kind is judged by its members' thresholds.
            threshold=rules.thresholds[batch_spec.grouped_from or batch_spec.name].critical,
            window_hours=rules.window_hours,
            aggregation_id=push.aggregation_id,
            built_at=received_at,
            note=lambda reason: _note(reason, windows),
        )
        for batch_spec, batch, places in batches
    ]
    to_write = sum(len(p.revisions) for p in plans)
    if push_plan.written_later(to_write, chunk_size):
        chunks = [chunk for p in plans for chunk in p.split(chunk_size)]
        await push_plan.store(db, chunks, push_id=push_id, push_kind=kind, at=received_at)
    else:
        to_write = 0
        for planned in plans:
            await push_plan.write(session, db, planned, push_id=push_id, targets=targets)
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
        revisions_to_write=to_write,
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
        # What is still to be written is read live (push_plan.to_write), never stored.
        result.model_dump_json(exclude={"revisions_to_write"}),
    )


async def _earlier_result(
    db: asyncpg.Connection[Any], *, kind: str, push: Push
) -> PushResult | None:
    """The stored result of this very push, if known; a conflict if a later one was applied."""
    stored = await db.fetchrow(
        "SELECT id, result::text FROM aggregation_push WHERE kind = $1 AND aggregation_id = $2",
        kind,
        push.aggregation_id,
    )
    if stored is not None:
        result = PushResult.model_validate_json(stored["result"])
        pending = await push_plan.to_write(db, [stored["id"]])
        return result.model_copy(update={"revisions_to_write": pending.get(stored["id"], 0)})
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
        _INSERT_SAMPLES,
        spec.name,
        text_array(columns.entity_ids),
        columns.ats,
        columns.values,
        push_id,
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
