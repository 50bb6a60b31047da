"""Outcome reports from the BEs: where each delivered revision stands (docs/contracts.md §10).

A report moves its delivery's stage (at_backend → completed | error | moved) and brings
the platform ids and the last error. Only the BE that holds the delivery may report on it,
and only a seq newer than the stored one applies, so Error → re-drive → Completed ends
Completed in any arrival order, and a resend changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.array_text import int_array, text_array
from ticketing_common.outcome import OutcomeReport, ReportResult
from wm_service.distribution import fencing

log = logging.getLogger(__name__)

_APPLY = text(
    """
    UPDATE ticket_delivery d SET
        stage = r.stage, report_seq = r.seq, outcome_at = r.at,
        incident_public_id = COALESCE(r.incident_public_id, d.incident_public_id),
        incident_rec_id = COALESCE(r.incident_rec_id, d.incident_rec_id),
        work_order_id = COALESCE(r.work_order_id, d.work_order_id),
        work_order_number = COALESCE(r.work_order_number, d.work_order_number),
        outcome_operation = r.operation, outcome_error = r.error
    -- (Columns bound as array text, cast from text: ticketing_common/array_text.py.)
    FROM unnest(CAST(:ticket_ids AS uuid[]), CAST(CAST(:revisions AS text) AS integer[]),
                CAST(CAST(:seqs AS text) AS integer[]), CAST(CAST(:stages AS text) AS text[]),
                CAST(CAST(:generations AS text) AS bigint[]),
                CAST(CAST(:incident_public_ids AS text) AS text[]),
                CAST(CAST(:incident_rec_ids AS text) AS text[]),
                CAST(CAST(:work_order_ids AS text) AS text[]),
                CAST(CAST(:work_order_numbers AS text) AS text[]),
                CAST(CAST(:operations AS text) AS text[]), CAST(:errors AS text[]),
                CAST(:ats AS timestamptz[]), CAST(CAST(:backends AS text) AS text[]))
         AS r(ticket_id, revision, seq, stage, generation, incident_public_id,
              incident_rec_id, work_order_id, work_order_number, operation, error, at,
              backend)
    -- Each delivery is found by its (ticket_id, revision) key; the backend is a check on
    -- the row found, joined row by row (an array of its name) with a comparison no index
    -- serves. Compared with one value, from statistics taken while a push's deliveries had
    -- no backend yet, Postgres put `backend_name = 'be1'` at three rows and read every
    -- delivery of the backend for each batch of reports (7 000 rows in a 20 000-ticket
    -- run, half the table at any size); as an indexable join it probed that index per
    -- report (docs/performance.md, item 41). r.backend is never NULL, so this matches
    -- exactly the rows `=` did.
    WHERE d.ticket_id = r.ticket_id AND d.revision = r.revision
      AND d.backend_name IS NOT DISTINCT FROM r.backend
      AND r.seq > d.report_seq
      AND (d.generation IS NULL OR r.generation IS NULL OR d.generation = r.generation)
    RETURNING d.id, d.stage
    """
)


def newest_per_revision(reports: Sequence[OutcomeReport]) -> list[OutcomeReport]:
    """One report per (ticket, revision): the highest seq (a batch may hold several)."""
    newest: dict[tuple[object, int], OutcomeReport] = {}
    for report in reports:
        key = (report.ticket_id, report.revision)
        if key not in newest or report.seq > newest[key].seq:
            newest[key] = report
    return list(newest.values())


async def apply(
    session: AsyncSession, *, backend_name: str, reports: Sequence[OutcomeReport]
) -> ReportResult:
    """Apply a BE's batch of reports in one statement; the others are counted as ignored
    (stale seq, a revision this BE does not hold, another generation, unknown revision)."""
    batch = newest_per_revision(reports)
    applied = 0
    if batch:
        rows = (
            await (await session.connection()).execute(
                _APPLY, {"backends": text_array([backend_name] * len(batch)), **_columns(batch)}
            )
        ).all()
        applied = len(rows)
        # The BE gave these up (their element moved on): never leave one waiting for it.
        moved = [row_id for row_id, stage in rows if stage == "moved"]
        await fencing.take_back_moved(
            session, backend_name=backend_name, ids=moved, now=datetime.now(UTC)
        )
    ignored = len(reports) - applied
    if ignored:
        log.info(
            "ignored %d of %d outcome report(s) from %s: stale, resent or not its revisions",
            ignored,
            len(reports),
            backend_name,
            extra={"backend": backend_name},
        )
    return ReportResult(applied=applied, ignored=ignored)


def _columns(batch: Sequence[OutcomeReport]) -> dict[str, object]:
    # Errors are free text from the platforms, often quoted: bound as a list (array_text.py).
    return {
        "ticket_ids": [r.ticket_id for r in batch],
        "revisions": int_array([r.revision for r in batch]),
        "seqs": int_array([r.seq for r in batch]),
        "stages": text_array([r.stage for r in batch]),
        "generations": int_array([r.generation for r in batch]),
        "incident_public_ids": text_array([r.incident_public_id for r in batch]),
        "incident_rec_ids": text_array([r.incident_rec_id for r in batch]),
        "work_order_ids": text_array([r.work_order_id for r in batch]),
        "work_order_numbers": text_array([r.work_order_number for r in batch]),
        "operations": text_array([r.operation for r in batch]),
        "errors": [r.error for r in batch],
        "ats": [r.at for r in batch],
    }
