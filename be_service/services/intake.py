"""Intake: record a batch of ticket revisions as Received, all or nothing, idempotently.

The WM may resend a batch; (ticket_id, revision) already stored counts as a duplicate and
keeps the first copy, except that an unfinished copy takes a newer ownership generation
(pipeline/fence.py). One INSERT for the whole batch, whatever its size.
"""

from __future__ import annotations

import msgspec
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service import reports
from be_service.models import FIRST_STEP, Status
from be_service.schemas import IntakeResult
from ticketing_common.array_text import int_array, text_array
from ticketing_common.contract import TicketDocument

_INSERT = text(
    """
    INSERT INTO ticket_revision
        (ticket_id, revision, dedup_key, action, kind, category, priority, payload, status,
         step, retry_round, received_at, updated_at, generation, generated_at)
    SELECT v.ticket_id, v.revision, v.dedup_key, v.action, v.kind, v.category, v.priority,
           CAST(v.payload AS jsonb), :status, :step, 0, now(), now(), CAST(:generation AS bigint),
           v.generated_at
    -- (Columns bound as array text, cast from text: ticketing_common/array_text.py.)
    FROM unnest(CAST(:ticket_ids AS uuid[]), CAST(CAST(:revisions AS text) AS integer[]),
                CAST(CAST(:dedup_keys AS text) AS text[]),
                CAST(CAST(:actions AS text) AS text[]), CAST(CAST(:kinds AS text) AS text[]),
                CAST(CAST(:categories AS text) AS text[]),
                CAST(CAST(:priorities AS text) AS text[]),
                CAST(:payloads AS text[]), CAST(:generated_ats AS timestamptz[]))
         WITH ORDINALITY AS v(ticket_id, revision, dedup_key, action, kind, category, priority,
                              payload, generated_at, n)
    ORDER BY v.n
    ON CONFLICT (ticket_id, revision) DO UPDATE
        SET generation = EXCLUDED.generation,
            status = CASE WHEN ticket_revision.status IN ('Completed', 'Error')
                          THEN ticket_revision.status ELSE 'Received' END,
            claimed_by = NULL, claimed_until = NULL, updated_at = now()
        -- Sent again under a newer generation (it came back to this BE after a failover):
        -- an unfinished copy takes the new generation and resumes where it stopped; a
        -- finished one keeps its outcome and reports it again under the new generation
        -- (the WM took it back because the first report never reached it).
        WHERE ticket_revision.generation < EXCLUDED.generation
    RETURNING id, status, xmax = 0 AS inserted
    """
)


async def create(
    session: AsyncSession,
    *,
    tickets: list[TicketDocument],
    generation: int | None = None,
    report: bool = False,
) -> IntakeResult:
    """Store the revisions not stored yet as Received, with the delivery's `generation`;
    returns how many were new (a duplicate keeps its first copy)."""
    if not tickets:
        return IntakeResult(accepted=0, duplicates=0)
    # Arrival order is processing order per dedup key (pipeline/store.py): keep the WM's
    # order of tickets, but store several revisions of one ticket in revision order.
    first_seen: dict[object, int] = {}
    for index, ticket in enumerate(tickets):
        first_seen.setdefault(ticket.ticket_id, index)
    # A revision twice in one batch is stored once (the upsert may touch a row only once).
    unique = {(t.ticket_id, t.revision): t for t in reversed(tickets)}.values()
    ordered = sorted(unique, key=lambda t: (first_seen[t.ticket_id], t.revision))
    result = await (await session.connection()).execute(
        _INSERT,
        {
            "status": Status.received.value,
            "step": FIRST_STEP,
            "generation": generation,
            "ticket_ids": [t.ticket_id for t in ordered],
            "revisions": int_array([t.revision for t in ordered]),
            "dedup_keys": text_array([t.dedup_key for t in ordered]),
            "actions": text_array([t.action for t in ordered]),
            "kinds": text_array([t.kind for t in ordered]),
            "categories": text_array([t.category for t in ordered]),
            "priorities": text_array([t.priority for t in ordered]),
            "generated_ats": [t.generated_at for t in ordered],
            "payloads": [msgspec.json.encode(t.model_dump(mode="json")).decode() for t in ordered],
        },
    )
    rows = result.all()
    accepted = sum(1 for _, _, inserted in rows if inserted)
    # A finished copy sent again under a newer generation reports its outcome again.
    finished = {
        row_id: reports.STAGE_OF_END[status]
        for row_id, status, inserted in rows
        if status in reports.STAGE_OF_END
    }
    if report and finished:
        await reports.record(session, finished)
    return IntakeResult(accepted=accepted, duplicates=len(tickets) - accepted)
