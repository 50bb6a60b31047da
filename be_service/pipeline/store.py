"""The pipeline's SQL: claim a batch with FOR UPDATE SKIP LOCKED, record a step's outcomes.

Bulk statements only (unnest arrays), so one batch costs a handful of round trips whatever
its size; every function runs inside the caller's transaction and never commits.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service.models import Operation, Status, Step
from be_service.pipeline.retry import decide
from ticketing_common.backoff import Backoff


@dataclass
class Claimed:
    """A revision this worker holds, with what the steps need; mutated as steps succeed."""

    id: int
    ticket_id: uuid.UUID
    revision: int
    dedup_key: str
    action: str
    kind: str
    category: str
    priority: str
    title: str
    description: str
    work_order_subject: str
    work_order_description: str
    step: str
    ids: dict[str, dict[str, Any]]  # platform_ids: {platform: {key: value}}

    def platform_id(self, platform: str, key: str) -> Any:
        return (self.ids.get(platform) or {}).get(key)


@dataclass
class Outcome:
    """The result of one operation on one revision: an attempt row plus the state change."""

    revision_id: int
    operation: Operation
    ok: bool
    at: datetime
    http_status: int | None = None
    response: str | None = None
    error: str | None = None
    # On success: the next step (Step.done completes the revision) and the platforms whose
    # ids it learnt, each entry whole ({"cherwell": {"rec_id": …, "public_id": …}}).
    step: Step | None = None
    ids: dict[str, dict[str, Any]] = field(default_factory=dict)
    # On failure: may it be retried, how long did the platform ask us to wait, and the
    # least wait before the revision is taken again (an ambiguous create's settling time).
    retryable: bool = True
    retry_after: float | None = None
    min_delay: float = 0.0


_CLAIM = text(
    """
    WITH picked AS (
        SELECT r.id FROM ticket_revision r
        WHERE r.status = 'Received'
          AND (r.claimed_until IS NULL OR r.claimed_until < now())
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
              t.step, t.platform_ids AS ids
    """
)


async def claim_batch(
    session: AsyncSession, *, worker: str, limit: int, lease_seconds: float
) -> list[Claimed]:
    """Take up to `limit` claimable revisions: Received, lease free, and first of their key."""
    result = await (await session.connection()).execute(
        _CLAIM, {"worker": worker, "limit": limit, "lease": lease_seconds}
    )
    claimed = [Claimed(**row._mapping) for row in result]
    claimed.sort(key=lambda c: c.id)
    return claimed


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
        (revision_id, retry_round, operation, at, ok, http_status, response, error)
    SELECT v.revision_id, r.retry_round, v.operation, v.at, v.ok, v.http_status, v.response,
           v.error
    FROM unnest(CAST(:revision_ids AS bigint[]), CAST(:operations AS text[]),
                CAST(:ats AS timestamptz[]), CAST(:oks AS boolean[]),
                CAST(:http_statuses AS integer[]), CAST(:responses AS text[]),
                CAST(:errors AS text[]))
         WITH ORDINALITY AS v(revision_id, operation, at, ok, http_status, response, error, n)
    JOIN ticket_revision r ON r.id = v.revision_id
    ORDER BY v.n
    """
)

_FAILURE_COUNTS = text(
    """
    SELECT a.revision_id, a.operation, count(*) AS failures
    FROM ticket_attempt a JOIN ticket_revision r ON r.id = a.revision_id
    WHERE a.revision_id = ANY(CAST(:ids AS bigint[])) AND NOT a.ok
      AND a.retry_round = r.retry_round
    GROUP BY a.revision_id, a.operation
    """
)

_UPDATE_REVISIONS = text(
    """
    UPDATE ticket_revision t SET
        step = COALESCE(v.step, t.step),
        status = COALESCE(v.status, t.status),
        platform_ids = t.platform_ids || CAST(v.ids AS jsonb),
        last_error = CASE WHEN v.status = 'Completed' THEN NULL
                          ELSE COALESCE(v.error, t.last_error) END,
        claimed_by = CASE WHEN v.keep_claim THEN t.claimed_by ELSE NULL END,
        claimed_until = CASE WHEN v.delay IS NULL THEN NULL
                             ELSE now() + make_interval(secs => v.delay) END,
        completed_at = CASE WHEN v.status = 'Completed' THEN now() ELSE t.completed_at END,
        updated_at = now()
    FROM unnest(CAST(:ids AS bigint[]), CAST(:steps AS text[]), CAST(:statuses AS text[]),
                CAST(:platform_ids AS text[]), CAST(:errors AS text[]),
                CAST(:keep_claims AS boolean[]), CAST(:delays AS double precision[]))
         AS v(id, step, status, ids, error, keep_claim, delay)
    WHERE t.id = v.id AND t.claimed_by = :worker
    """
)


async def record_outcomes(
    session: AsyncSession,
    outcomes: list[Outcome],
    *,
    worker: str,
    max_retries: int,
    backoff: Backoff,
    lease_seconds: float,
) -> set[int]:
    """Store the attempts and move each revision on; returns the ids that ended in Error.

    A success either completes the revision (Step.done) or keeps the claim for the next
    step; a failure releases it with a backoff delay, or ends it in Error once this
    operation has failed `max_retries` + 1 times in the current round.
    """
    if not outcomes:
        return set()
    await (await session.connection()).execute(
        _INSERT_ATTEMPTS,
        {
            "revision_ids": [o.revision_id for o in outcomes],
            "operations": [o.operation.value for o in outcomes],
            "ats": [o.at for o in outcomes],
            "oks": [o.ok for o in outcomes],
            "http_statuses": [o.http_status for o in outcomes],
            "responses": [o.response for o in outcomes],
            "errors": [o.error for o in outcomes],
        },
    )
    failures: Counter[tuple[int, str]] = Counter()
    failed_ids = [o.revision_id for o in outcomes if not o.ok]
    if failed_ids:
        rows = await (await session.connection()).execute(_FAILURE_COUNTS, {"ids": failed_ids})
        for revision_id, operation, count in rows:
            failures[(revision_id, operation)] = count

    # Several outcomes of one revision (create, work order, link) fold into one row update:
    # ids accumulate, the last success decides the step, the last outcome the claim. A
    # failure never moves the step back: after a create that succeeded, a failed work
    # order must resume at the work order, not search (and maybe create) the incident again.
    merged: dict[int, dict[str, Any]] = {}
    errored: set[int] = set()
    for o in outcomes:
        row = merged.setdefault(o.revision_id, {"ids": {}, "step": None})
        row["ids"].update(o.ids)
        row.update(status=None, error=None, delay=None, keep_claim=False)
        if o.ok:
            row["step"] = o.step
            if o.step is Step.done:
                row["status"] = Status.completed.value
            else:
                row["keep_claim"], row["delay"] = True, lease_seconds
            continue
        row["error"] = o.error
        decision = decide(
            failures=failures[(o.revision_id, o.operation.value)],
            max_retries=max_retries,
            retryable=o.retryable,
            retry_after=o.retry_after,
            backoff=backoff,
        )
        if decision.give_up:
            row["status"] = Status.error.value
            errored.add(o.revision_id)
        else:
            row["delay"] = max(decision.delay_seconds, o.min_delay)
    columns: dict[str, list[Any]] = {
        "ids": list(merged),
        "steps": [r["step"].value if r["step"] else None for r in merged.values()],
        "statuses": [r["status"] for r in merged.values()],
        "errors": [r["error"] for r in merged.values()],
        "keep_claims": [r["keep_claim"] for r in merged.values()],
        "delays": [r["delay"] for r in merged.values()],
    }
    columns["platform_ids"] = [json.dumps(r["ids"]) for r in merged.values()]
    await (await session.connection()).execute(_UPDATE_REVISIONS, {**columns, "worker": worker})
    return errored


_EARLIER_REVISIONS = text(
    """
    SELECT c.ticket_id
    FROM unnest(CAST(:ticket_ids AS uuid[]), CAST(:revisions AS integer[]))
         AS c(ticket_id, revision)
    JOIN ticket_revision r ON r.ticket_id = c.ticket_id AND r.revision < c.revision
    GROUP BY c.ticket_id, c.revision
    -- Revisions are numbered from 1 without gaps: all earlier ones must be here, or one
    -- may have gone through another BE (before a failover) and opened the incident.
    HAVING count(*) = c.revision - 1
       AND NOT bool_or(r.platform_ids->'cherwell'->>'rec_id' IS NOT NULL OR EXISTS (
               SELECT 1 FROM ticket_attempt a
               WHERE a.revision_id = r.id AND a.operation = 'create'))
    """
)


async def tickets_known_off_platform(
    session: AsyncSession, claimed: list[Claimed]
) -> set[uuid.UUID]:
    """Ticket ids whose earlier revisions are all here and never sent a create to Cherwell."""
    rows = await (await session.connection()).execute(
        _EARLIER_REVISIONS,
        {
            "ticket_ids": [c.ticket_id for c in claimed],
            "revisions": [c.revision for c in claimed],
        },
    )
    return {ticket_id for (ticket_id,) in rows}
