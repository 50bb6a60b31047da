"""Outcome reports to the WM: an outbox written with each revision's state change, drained
by the reporter loop (docs/contracts.md §8).

Reports are written in the statement or transaction that changes the revision (the
pipeline's revision update in pipeline/store.py, `record` for a retry, a move or a re-sent
finished copy), so a report exists exactly when its state change does; `run_reporter`
POSTs the oldest reports and deletes them once the WM acknowledged them with a 2xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service.models import ReportStage, Status
from ticketing_common.backoff import Backoff
from ticketing_common.db import session_scope
from ticketing_common.errors import log_retried_failure
from ticketing_common.outcome import ERROR_MAX, OutcomeReport, ReportBatch
from ticketing_common.waits import wait_for_event

log = logging.getLogger(__name__)

_scope = contextlib.asynccontextmanager(session_scope)

# The outcome reported to the WM when a revision ends in this status.
STAGE_OF_END = {
    Status.completed.value: ReportStage.completed,
    Status.error.value: ReportStage.error,
}

# One report per row of a CTE named `bumped`: revisions whose report_seq the same statement
# just bumped, RETURNING ticket_id, revision, report_seq, generation, platform_ids, step,
# last_error and the report's stage. The report's seq is the revision's report_seq after the
# bump. Both statements that write reports end with it (reports.record, and the pipeline's
# revision update, store.py); :error_max is ERROR_MAX.
INSERT_REPORTS_OF_BUMPED = """
    INSERT INTO outcome_report (ticket_id, revision, seq, stage, body, created_at)
    SELECT b.ticket_id, b.revision, b.report_seq, b.stage,
           jsonb_build_object(
               'ticket_id', b.ticket_id, 'revision', b.revision, 'seq', b.report_seq,
               'stage', b.stage, 'generation', b.generation,
               'incident_public_id', b.platform_ids->'cherwell'->>'public_id',
               'incident_rec_id', b.platform_ids->'cherwell'->>'rec_id',
               'work_order_id', b.platform_ids->'sfyc'->>'id',
               'work_order_number', b.platform_ids->'sfyc'->>'number',
               'operation', CASE WHEN b.stage = 'error' THEN b.step END,
               'error', CASE WHEN b.stage = 'error' THEN left(b.last_error, :error_max) END,
               'at', now()),
           now()
    FROM bumped b
"""

# One report per revision: its seq is the revision's report_seq, bumped in the same statement.
_BUMP_REPORT_SEQ = """
    WITH bumped AS (
        UPDATE ticket_revision t SET report_seq = t.report_seq + 1
        FROM unnest(CAST(:ids AS bigint[]), CAST(:stages AS text[])) AS v(id, stage)
        WHERE t.id = v.id
        RETURNING t.ticket_id, t.revision, t.report_seq, t.generation, t.platform_ids,
                  t.step, t.last_error, v.stage
    )
"""
_RECORD = text(_BUMP_REPORT_SEQ + INSERT_REPORTS_OF_BUMPED)


async def record(session: AsyncSession, stages: Mapping[int, ReportStage]) -> None:
    """Write one report per revision id with its stage, in the caller's transaction."""
    if stages:
        await (await session.connection()).execute(
            _RECORD,
            {
                "ids": list(stages),
                "stages": [s.value for s in stages.values()],
                "error_max": ERROR_MAX,
            },
        )


_OLDEST = text("SELECT id, body FROM outcome_report ORDER BY id LIMIT :limit")
_DELETE = text("DELETE FROM outcome_report WHERE id = ANY(CAST(:ids AS bigint[]))")


class ReportRefused(Exception):
    """The WM did not acknowledge a batch (transport error or a non-2xx answer)."""


@dataclass
class Reporter:
    """Sends this BE's outbox of reports to the WM; one per process."""

    sessionmaker: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    url: str  # {BE_WM_URL}/api/v1/backends/{BE_NAME}/reports
    token: str | None = field(repr=False)
    batch_size: int = 200

    async def send_once(self) -> int:
        """Send the oldest reports and delete them on the WM's ack; how many were sent.

        No transaction is held across the POST: a report sent twice (the BE died before the
        delete) is harmless, the WM ignores a seq it already has.
        """
        async with _scope(self.sessionmaker) as session:
            connection = await session.connection()
            rows = (await connection.execute(_OLDEST, {"limit": self.batch_size})).all()
        if not rows:
            return 0
        batch = ReportBatch(reports=[OutcomeReport.model_validate(body) for _, body in rows])
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self.http.post(
                self.url, content=batch.model_dump_json(), headers=headers | _JSON
            )
        except httpx.HTTPError as exc:
            raise ReportRefused(type(exc).__name__) from exc
        if not response.is_success:
            raise ReportRefused(f"HTTP {response.status_code}")
        async with _scope(self.sessionmaker) as session:
            await (await session.connection()).execute(_DELETE, {"ids": [i for i, _ in rows]})
        return len(rows)


_JSON = {"Content-Type": "application/json"}


async def run_reporter(
    reporter: Reporter, *, poll_seconds: float, backoff: Backoff, stop: asyncio.Event
) -> None:
    """Drain the outbox until `stop`: at once while full batches go, every `poll_seconds`
    when idle, and after a backoff (growing while the WM refuses) when a send fails."""
    failures = 0
    while not stop.is_set():
        try:
            sent = await reporter.send_once()
            failures = 0
            delay = 0.0 if sent >= reporter.batch_size else poll_seconds
        except ReportRefused as exc:
            failures += 1
            delay = backoff.delay(failures)
            log.warning(
                "outcome reports not acknowledged by the WM (%s); retry in %.1f s", exc, delay
            )
        except Exception:
            failures += 1
            delay = backoff.delay(failures)
            log_retried_failure(log, "sending outcome reports failed")
        await wait_for_event(stop, max(delay, 0.01))
