"""The pipeline's SQL: claim a batch with FOR UPDATE SKIP LOCKED, record outcomes and updates.

Bulk statements only (unnest arrays), so one batch costs a handful of round trips whatever
its size; every function runs inside the caller's transaction and never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import msgspec
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service import reports
from be_service.models import ReportStage
from be_service.pipeline.fence import NO_GENERATION, Fence
from be_service.pipeline.policy import FailureCount, RevisionUpdate
from be_service.pipeline.steps import Item, Outcome
from ticketing_common.array_text import bool_array, int_array, text_array
from ticketing_common.outcome import ERROR_MAX

# Holders joined, not compared: the statements that change revisions "if this worker still
# holds them" join the worker's name row by row (an array of it, one per revision) instead
# of comparing claimed_by with one value. Postgres estimates `claimed_by = 'be1-w3'` from
# statistics taken when few rows were claimed, at one row: it then read the table once and
# the statement's arrays once per revision found, 80 ms for 400 revisions among 20 000
# where the join by id through the primary key takes 6 ms (docs/performance.md, item 41).

# A revision's platform ids as JSON text for the jsonb column (json.dumps: 4.5 us each, two
# per revision; this 0.4 us).
_IDS = msgspec.json.Encoder()

_CLAIM = text(
    """
    WITH picked AS (
        SELECT r.id FROM ticket_revision r
        WHERE r.status = 'Received'
          AND (r.claimed_until IS NULL OR r.claimed_until < now())
          -- Fencing (fence.py): a revision delivered under a generation waits for a lease
          -- on that generation; one without is not fenced.
          AND (r.generation IS NULL OR NOT :fenced OR r.generation = :generation)
          AND NOT EXISTS (
              SELECT 1 FROM ticket_revision p
              WHERE p.dedup_key = r.dedup_key AND p.status = 'Received' AND p.id <> r.id
                AND (p.id < r.id OR (p.ticket_id = r.ticket_id AND p.revision < r.revision))
          )
        ORDER BY r.id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE ticket_revision t
    SET claimed_by = :worker, claimed_until = now() + make_interval(secs => :lease)
    FROM picked WHERE t.id = picked.id
    RETURNING t.id, t.ticket_id, t.revision, t.dedup_key, t.action, t.kind, t.category,
              t.priority, t.payload->>'title' AS title,
              coalesce(t.payload->>'description', '') AS description,
              coalesce(t.payload->'work_order'->>'subject', t.payload->>'title')
                  AS work_order_subject,
              coalesce(t.payload->'work_order'->>'description', '') AS work_order_description,
              t.step, t.platform_ids AS ids, t.generation
    """
)


async def claim_batch(
    session: AsyncSession,
    *,
    worker: str,
    limit: int,
    lease_seconds: float,
    fence: Fence | None = None,
) -> list[Item]:
    """Take up to `limit` claimable revisions: Received, lease free, first of their key,
    and of the generation the `fence` holds a lease on (if they carry one)."""
    result = await (await session.connection()).execute(
        _CLAIM,
        {
            "worker": worker,
            "limit": limit,
            "lease": lease_seconds,
            "fenced": fence is not None and fence.enabled,
            "generation": fence.claimable_generation() if fence else NO_GENERATION,
        },
    )
    return sorted((Item(**row._mapping) for row in result), key=lambda item: item.id)


_EXTEND = text(
    """
    UPDATE ticket_revision
    SET claimed_until = now() + make_interval(secs => :lease)
    WHERE id = ANY(CAST(:ids AS bigint[])) AND claimed_by = :worker AND status = 'Received'
    """
)


async def extend_claims(
    session: AsyncSession, *, worker: str, ids: list[int], lease_seconds: float
) -> int:
    """Push the lease of this worker's claimed revisions forward; returns how many it holds."""
    result = await (await session.connection()).execute(
        _EXTEND, {"worker": worker, "ids": ids, "lease": lease_seconds}
    )
    return int(result.rowcount)


_INSERT_ATTEMPTS = text(
    """
    INSERT INTO ticket_attempt
        (revision_id, retry_round, operation, at, ok, http_status, response, error, cause)
    SELECT v.revision_id, r.retry_round, v.operation, v.at, v.ok, v.http_status, v.response,
           v.error, v.cause
    -- (Columns bound as array text, cast from text: ticketing_common/array_text.py.)
    FROM unnest(CAST(CAST(:revision_ids AS text) AS bigint[]),
                CAST(CAST(:operations AS text) AS text[]), CAST(:ats AS timestamptz[]),
                CAST(CAST(:oks AS text) AS boolean[]),
                CAST(CAST(:http_statuses AS text) AS integer[]), CAST(:responses AS text[]),
                CAST(:errors AS text[]), CAST(CAST(:causes AS text) AS text[]))
         WITH ORDINALITY AS v(revision_id, operation, at, ok, http_status, response, error,
                              cause, n)
    JOIN ticket_revision r ON r.id = v.revision_id
    ORDER BY v.n
    """
)

_FAILURE_COUNTS = text(
    """
    SELECT a.revision_id, a.operation,
           count(*) FILTER (WHERE a.cause IS DISTINCT FROM 'platform') AS ticket_failures,
           count(*) FILTER (WHERE a.cause = 'platform') AS platform_failures
    FROM ticket_attempt a JOIN ticket_revision r ON r.id = a.revision_id
    WHERE a.revision_id = ANY(CAST(:ids AS bigint[])) AND NOT a.ok
      AND a.retry_round = r.retry_round
    GROUP BY a.revision_id, a.operation
    """
)

# Each revision's step, ids and transition, if this worker still holds it. A revision that
# ends (Completed, Error) with a report wanted gets its stage in :stages: its report_seq is
# bumped in the same UPDATE and its report written from the RETURNING rows (reports.py), so
# ending a revision is one row version, not two.
_MOVE_REVISIONS = """
    WITH moved AS (
        UPDATE ticket_revision t SET
            step = v.step,
            status = v.status,
            platform_ids = CAST(v.ids AS jsonb),
            last_error = CASE WHEN v.status = 'Completed' THEN NULL
                              ELSE COALESCE(v.error, t.last_error) END,
            claimed_by = CASE WHEN v.keep_claim THEN t.claimed_by ELSE NULL END,
            claimed_until = CASE WHEN v.delay IS NULL THEN NULL
                                 ELSE now() + make_interval(secs => v.delay) END,
            completed_at = CASE WHEN v.status = 'Completed' THEN now() ELSE t.completed_at END,
            report_seq = t.report_seq + CASE WHEN v.stage IS NULL THEN 0 ELSE 1 END,
            updated_at = now()
        -- (Columns bound as array text, cast from text: ticketing_common/array_text.py.)
        FROM unnest(CAST(CAST(:ids AS text) AS bigint[]), CAST(CAST(:steps AS text) AS text[]),
                    CAST(CAST(:statuses AS text) AS text[]), CAST(:platform_ids AS text[]),
                    CAST(:errors AS text[]), CAST(CAST(:keep_claims AS text) AS boolean[]),
                    CAST(:delays AS double precision[]), CAST(CAST(:stages AS text) AS text[]),
                    CAST(CAST(:holders AS text) AS text[]))
             AS v(id, step, status, ids, error, keep_claim, delay, stage, holder)
        -- (Holders joined, not compared: see above.)
        WHERE t.id = v.id AND t.claimed_by = v.holder
        RETURNING t.ticket_id, t.revision, t.report_seq, t.generation, t.platform_ids,
                  t.step, t.last_error, v.stage
    ), bumped AS (SELECT * FROM moved WHERE stage IS NOT NULL)
"""
_UPDATE_REVISIONS = text(_MOVE_REVISIONS + reports.INSERT_REPORTS_OF_BUMPED)


async def insert_attempts(
    session: AsyncSession, outcomes: Sequence[Outcome]
) -> dict[tuple[int, str], FailureCount]:
    """One attempt row per outcome; returns, for each failed (revision, operation), how often
    it has failed in the revision's current round, by cause, these failures included."""
    connection = await session.connection()
    await connection.execute(
        _INSERT_ATTEMPTS,
        {
            "revision_ids": int_array([o.revision_id for o in outcomes]),
            "operations": text_array([o.operation for o in outcomes]),
            "ats": [o.at for o in outcomes],
            "oks": bool_array([o.ok for o in outcomes]),
            "http_statuses": int_array([o.http_status for o in outcomes]),
            # The platforms' answers and errors: JSON and free text, bound as lists.
            "responses": [o.response for o in outcomes],
            "errors": [o.error for o in outcomes],
            "causes": text_array([None if o.ok else o.cause.value for o in outcomes]),
        },
    )
    failed_ids = [o.revision_id for o in outcomes if not o.ok]
    if not failed_ids:
        return {}
    rows = await connection.execute(_FAILURE_COUNTS, {"ids": failed_ids})
    return {
        (revision_id, operation): FailureCount(ticket=ticket, platform=platform)
        for revision_id, operation, ticket, platform in rows
    }


async def update_revisions(
    session: AsyncSession, updates: Sequence[RevisionUpdate], *, worker: str, report: bool = False
) -> None:
    """Write each revision's step, ids and transition, if this worker still holds it; with
    `report`, those that became Completed or Error leave an outcome report for the WM."""
    await (await session.connection()).execute(
        _UPDATE_REVISIONS,
        {
            "ids": int_array([u.id for u in updates]),
            "steps": text_array([u.step for u in updates]),
            "statuses": text_array([u.transition.status.value for u in updates]),
            # Documents, free text and delays, bound as lists (array_text.py).
            "platform_ids": [_IDS.encode(u.ids).decode() for u in updates],
            "errors": [u.transition.error for u in updates],
            "keep_claims": bool_array([u.transition.keep_claim for u in updates]),
            "delays": [u.transition.delay for u in updates],
            "stages": text_array(
                [_reported(u.transition.status.value) if report else None for u in updates]
            ),
            "holders": text_array([worker] * len(updates)),
            "error_max": ERROR_MAX,
        },
    )


def _reported(status: str) -> str | None:
    stage = reports.STAGE_OF_END.get(status)
    return None if stage is None else stage.value


_RELEASE = text(
    """
    UPDATE ticket_revision t
    SET claimed_by = NULL, claimed_until = now() + make_interval(secs => v.delay),
        updated_at = now()
    FROM unnest(CAST(:ids AS bigint[]), CAST(:delays AS double precision[]),
                CAST(:holders AS text[])) AS v(id, delay, holder)
    -- (Holders joined, not compared: see above.)
    WHERE t.id = v.id AND t.claimed_by = v.holder AND t.status = 'Received'
    """
)


async def release(session: AsyncSession, waits: Mapping[int, float], *, worker: str) -> None:
    """Hand back revisions this worker holds but did not send (their platform's circuit is
    open), to be taken again after their delay; no attempt is recorded, none was made."""
    if waits:
        await (await session.connection()).execute(
            _RELEASE,
            {"ids": list(waits), "delays": list(waits.values()), "holders": [worker] * len(waits)},
        )


_EARLIER_REVISIONS = text(
    """
    SELECT c.ticket_id
    FROM unnest(CAST(:ticket_ids AS uuid[]), CAST(:revisions AS integer[]))
         AS c(ticket_id, revision)
    -- (A Moved revision is not "here": another BE sent it, and may have opened the incident.)
    JOIN ticket_revision r ON r.ticket_id = c.ticket_id AND r.revision < c.revision
                          AND r.status <> 'Moved'
    GROUP BY c.ticket_id, c.revision
    -- Revisions are numbered from 1 without gaps: all earlier ones must be here, or one
    -- may have gone through another BE (before a failover) and opened the incident.
    HAVING count(*) = c.revision - 1
       AND NOT bool_or(r.platform_ids <> '{}'::jsonb OR EXISTS (
               SELECT 1 FROM ticket_attempt a
               WHERE a.revision_id = r.id AND a.operation = ANY(CAST(:writes AS text[]))))
    """
)


async def tickets_known_off_platform(
    session: AsyncSession, items: Sequence[Item], *, writes: Sequence[str]
) -> set[uuid.UUID]:
    """Ticket ids whose earlier revisions are all here, hold no platform id and never tried
    one of the `writes` (steps whose lost answer may have written, like the create)."""
    rows = await (await session.connection()).execute(
        _EARLIER_REVISIONS,
        {
            "ticket_ids": [i.ticket_id for i in items],
            "revisions": [i.revision for i in items],
            "writes": list(writes),
        },
    )
    return {ticket_id for (ticket_id,) in rows}


_MARK_MOVED = text(
    """
    UPDATE ticket_revision
    SET status = 'Moved', claimed_by = NULL, claimed_until = NULL, updated_at = now()
    WHERE status = 'Received' AND generation < :generation
    RETURNING id
    """
)


async def mark_moved(session: AsyncSession, *, generation: int, report: bool) -> int:
    """Give up the Received revisions delivered under a generation older than `generation`:
    a failover moved their elements to another BE, which sends them. With `report`, each
    leaves a `moved` outcome report; returns how many were given up."""
    rows = await (await session.connection()).execute(_MARK_MOVED, {"generation": generation})
    ids = [row_id for (row_id,) in rows]
    if report:
        await reports.record(session, dict.fromkeys(ids, ReportStage.moved))
    return len(ids)
