"""Outcome reports to the WM: an outbox written with each revision's state change, drained
by the reporter loop (docs/contracts.md §10).

Reports are written in the statement or transaction that changes the revision (the
pipeline's revision update in pipeline/store.py, `record` for a retry, a move or a re-sent
finished copy), so a report exists exactly when its state change does; `run_reporter`
POSTs the oldest reports and deletes them once the WM acknowledged them with a 2xx. One the
WM can never accept as it is is set aside instead (`Reporter`), and deleted unsent only once
a newer report of its revision supersedes it, or an operator discards it (`discard_refused`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service.models import ReportStage, Status
from be_service.pipeline.steps import truncate
from be_service.schemas import OutcomeReportPage, OutcomeReportPublic
from ticketing_common.backoff import Backoff
from ticketing_common.db import session_scope
from ticketing_common.errors import Conflict, NotFound, log_retried_failure
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


# The oldest reports to send: those not refused, and a refused one once it has waited
# `retry_refused` seconds (a fix to the WM or to this BE may have made it acceptable).
_OLDEST = text(
    """
    SELECT id, body, refused_at FROM outcome_report
    WHERE refused_at IS NULL OR refused_at < now() - make_interval(secs => :retry_refused)
    ORDER BY id LIMIT :limit
    """
)


async def due_reports(
    session: AsyncSession, *, limit: int, retry_refused_seconds: float
) -> Sequence[Row[Any]]:
    """The oldest reports to send now (id, body, refused_at), at most `limit`."""
    params = {"limit": limit, "retry_refused": retry_refused_seconds}
    return (await (await session.connection()).execute(_OLDEST, params)).all()


_DELETE = text("DELETE FROM outcome_report WHERE id = ANY(CAST(:ids AS bigint[]))")
# Set aside with why; not a row an operator's retry put back in line since it was read.
_REFUSE = text(
    """
    UPDATE outcome_report o SET refused_at = now(), refusal = v.refusal
    FROM unnest(CAST(:ids AS bigint[]), CAST(:refusals AS text[]),
                CAST(:read_refused_at AS timestamptz[])) AS v(id, refusal, read_refused_at)
    WHERE o.id = v.id AND o.refused_at IS NOT DISTINCT FROM v.read_refused_at
    """
)
# Refused reports a newer report of their revision supersedes (its report_seq is past
# theirs): the WM would ignore them, so they are dropped instead of tried again.
_DROP_SUPERSEDED = text(
    """
    DELETE FROM outcome_report o USING ticket_revision t
    WHERE o.id = ANY(CAST(:ids AS bigint[])) AND o.refused_at IS NOT NULL
      AND t.ticket_id = o.ticket_id AND t.revision = o.revision AND o.seq < t.report_seq
    RETURNING o.id
    """
)
# A field of the WM's 422 that names one report of the batch: "reports[3].stage".
_REPORT_FIELD = re.compile(r"^reports\[(\d+)\]")
REFUSAL_MAX = 500
# POSTs per pass while the WM's 422s name reports: the rest of the batch goes again at once,
# so reports it refuses do not hold up the others for a poll interval each.
_POSTS_PER_PASS = 3


class ReportRefused(Exception):
    """The WM did not acknowledge a batch (transport error or a non-2xx answer)."""


@dataclass
class Reporter:
    """Sends this BE's outbox of reports to the WM; one per process.

    A report that can never be accepted as it is (invalid by the contract here, or named by
    the WM's 422) is set aside, with why, so that the reports behind it flow; it is tried
    again every `retry_refused_seconds`, and counted by the `be_outcome_reports` gauge until
    then. One a newer report of its revision supersedes is dropped when it comes due (so it
    stays counted, and alerted on, for up to that long after a re-drive); an operator may
    discard one before (`discard_refused`).
    """

    sessionmaker: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    url: str  # {BE_WM_URL}/api/v1/backends/{BE_NAME}/reports
    token: str | None = field(repr=False)
    batch_size: int = 200
    retry_refused_seconds: float = 600.0

    async def send_once(self) -> int:
        """Send the oldest reports and delete them on the WM's ack, or set aside the ones
        refused as invalid; how many were dealt with.

        No transaction is held across the POST: a report sent twice (the BE died before the
        delete) is harmless, the WM ignores a seq it already has.
        """
        async with _scope(self.sessionmaker) as session:
            rows = await due_reports(
                session, limit=self.batch_size, retry_refused_seconds=self.retry_refused_seconds
            )
            connection = await session.connection()
            retried = [row.id for row in rows if row.refused_at is not None]
            superseded: set[int] = set()
            if retried:
                dropped = await connection.execute(_DROP_SUPERSEDED, {"ids": retried})
                superseded = set(dropped.scalars())
        if superseded:
            log.info(
                "%d refused outcome report(s) dropped: a newer report of the same revision "
                "supersedes them",
                len(superseded),
            )
        rows = [row for row in rows if row.id not in superseded]
        reports: dict[int, OutcomeReport] = {}
        invalid: dict[int, str] = {}
        for row in rows:
            try:
                reports[row.id] = OutcomeReport.model_validate(row.body)
            except ValidationError as exc:
                invalid[row.id] = _refusal(exc)
        read_refused_at = {row.id: row.refused_at for row in rows}
        bodies = {row.id: row.body for row in rows}
        # Recorded before any POST: a WM that is down does not hide them.
        refused = await self._refuse(invalid, read_refused_at, bodies)
        acknowledged: list[int] = []
        refused_by_wm: dict[int, str] = {}
        try:
            for _ in range(_POSTS_PER_PASS):
                if not reports:
                    break
                named = await self._post(reports)
                if not named:
                    acknowledged = list(reports)
                    break
                # A 422 applies nothing: the rest of the batch goes again.
                refused_by_wm |= named
                reports = {i: r for i, r in reports.items() if i not in named}
        finally:
            refused += await self._refuse(refused_by_wm, read_refused_at, bodies)
        if acknowledged:
            async with _scope(self.sessionmaker) as session:
                await (await session.connection()).execute(_DELETE, {"ids": acknowledged})
        return len(superseded) + refused + len(acknowledged)

    async def _refuse(
        self,
        refusals: dict[int, str],
        read_refused_at: Mapping[int, datetime | None],
        bodies: Mapping[int, Any],
    ) -> int:
        """Set these reports aside with why, and say so once for all of them; how many (an
        operator's retry since they were read keeps them in line)."""
        if not refusals:
            return 0
        async with _scope(self.sessionmaker) as session:
            result = await (await session.connection()).execute(
                _REFUSE,
                {
                    "ids": list(refusals),
                    "refusals": list(refusals.values()),
                    "read_refused_at": [read_refused_at[i] for i in refusals],
                },
            )
        count = int(getattr(result, "rowcount", 0) or 0)
        if not count:
            return 0
        first_id, first_why = next(iter(refusals.items()))
        first = bodies[first_id]
        log.error(
            "%d outcome report(s) refused as invalid, set aside so the others flow, tried "
            "again every %g s; the first: ticket %s revision %s: %s",
            count,
            self.retry_refused_seconds,
            first.get("ticket_id"),
            first.get("revision"),
            first_why,
            extra={"refused": count, "ticket_id": first.get("ticket_id")},
        )
        return count

    async def _post(self, reports: dict[int, OutcomeReport]) -> dict[int, str]:
        """POST the batch; {} once the WM acknowledged it, the reports its 422 names (with
        why) when it refused some as invalid. Any other failure raises ReportRefused."""
        batch = ReportBatch(reports=list(reports.values()))
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self.http.post(
                self.url, content=batch.model_dump_json(), headers=headers | _JSON
            )
        except httpx.HTTPError as exc:
            raise ReportRefused(type(exc).__name__) from exc
        if response.is_success:
            return {}
        named = _named_by_422(response, list(reports)) if response.status_code == 422 else {}
        if not named:
            raise ReportRefused(f"HTTP {response.status_code}")
        return named


def _refusal(exc: ValidationError) -> str:
    """Which fields and why, on one line."""
    parts = [
        f"{'.'.join(str(p) for p in error['loc']) or 'report'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    ]
    return truncate("; ".join(parts), REFUSAL_MAX) or "invalid"


def _named_by_422(response: httpx.Response, row_ids: list[int]) -> dict[int, str]:
    """The reports a WM's 422 names, by row id, with its messages; {} when it names none (a
    fault of the whole batch, which nothing here can set aside)."""
    try:
        details = response.json()["error"]["details"]
    except (ValueError, KeyError, TypeError):
        return {}
    named: dict[int, list[str]] = {}
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        found = _REPORT_FIELD.match(str(detail.get("field", "")))
        if found and int(found.group(1)) < len(row_ids):
            row_id = row_ids[int(found.group(1))]
            named.setdefault(row_id, []).append(f"{detail['field']}: {detail.get('message')}")
    return {
        row_id: truncate("the WM refused it: " + "; ".join(why), REFUSAL_MAX) or "refused"
        for row_id, why in named.items()
    }


_JSON = {"Content-Type": "application/json"}


class ReportState(StrEnum):
    """Of a report in the outbox: waiting its turn, or refused as invalid and set aside."""

    waiting = "waiting"
    refused = "refused"


# How many wait, how many are set aside, and how long the oldest waiting one has waited: a
# handful of rows while the WM acknowledges them, more only while it does not.
_COUNTS = text(
    """
    SELECT count(*) FILTER (WHERE refused_at IS NULL),
           count(*) FILTER (WHERE refused_at IS NOT NULL),
           coalesce(extract(epoch FROM
               now() - min(created_at) FILTER (WHERE refused_at IS NULL)), 0)
    FROM outcome_report
    """
)
_LIST = text(
    """
    SELECT id, ticket_id, revision, seq, stage, created_at, refused_at, refusal
    FROM outcome_report
    -- Every report, or those of one state: refused ones have refused_at, waiting ones none.
    WHERE CAST(:state AS text) IS NULL
       OR (CAST(:state AS text) = 'refused') = (refused_at IS NOT NULL)
    ORDER BY id LIMIT :limit
    """
)
_RETRY_REFUSED = text(
    "UPDATE outcome_report SET refused_at = NULL WHERE refused_at IS NOT NULL RETURNING id"
)
_DISCARD_REFUSED = text(
    """
    DELETE FROM outcome_report WHERE id = :id AND refused_at IS NOT NULL
    RETURNING id, ticket_id, revision, seq, stage, created_at, refused_at, refusal
    """
)
_IS_KEPT = text("SELECT true FROM outcome_report WHERE id = :id")


@dataclass(frozen=True)
class OutboxCounts:
    waiting: int
    refused: int
    oldest_waiting_seconds: float  # 0 when none waits


async def outbox_counts(session: AsyncSession) -> OutboxCounts:
    """The outbox in three numbers (its gauges, and the operator's listing)."""
    found = await (await session.connection()).execute(_COUNTS)
    waiting, refused, oldest = found.one()
    return OutboxCounts(waiting=waiting, refused=refused, oldest_waiting_seconds=float(oldest))


async def outbox(
    session: AsyncSession, *, state: ReportState | None, limit: int
) -> OutcomeReportPage:
    """The outbox for an operator: its counts and its oldest reports (of one state)."""
    counts = await outbox_counts(session)
    rows = await (await session.connection()).execute(
        _LIST, {"state": state.value if state else None, "limit": limit}
    )
    return OutcomeReportPage(
        waiting=counts.waiting,
        refused=counts.refused,
        oldest_waiting_seconds=counts.oldest_waiting_seconds,
        reports=[OutcomeReportPublic.model_validate(dict(row._mapping)) for row in rows],
    )


async def retry_refused(session: AsyncSession) -> int:
    """Put every refused report back in line now (say after the fix to the WM or this BE
    was deployed) instead of at its next retry; how many."""
    return len((await (await session.connection()).execute(_RETRY_REFUSED)).all())


async def discard_refused(session: AsyncSession, *, report_id: int) -> OutcomeReportPublic:
    """Delete one report set aside as refused, unsent: for a report that no fix will make
    acceptable, which would otherwise be tried, and alerted on, until a newer report of its
    revision supersedes it. The WM goes on showing that revision at the stage it last heard
    of. Only a refused report: one waiting its turn is on its way (409); one not kept is gone
    already (404). The caller logs who did it once committed (`log_discarded`)."""
    connection = await session.connection()
    row = (await connection.execute(_DISCARD_REFUSED, {"id": report_id})).one_or_none()
    if row is None:
        if (await connection.execute(_IS_KEPT, {"id": report_id})).first() is None:
            raise NotFound(
                f"no outcome report {report_id}: acknowledged by the WM, superseded or "
                "discarded already"
            )
        raise Conflict(
            f"outcome report {report_id} waits its turn to be sent; only a report set aside "
            "as refused can be discarded"
        )
    return OutcomeReportPublic.model_validate(dict(row._mapping))


def log_discarded(report: OutcomeReportPublic, actor: str) -> None:
    """The record of a discard (the BE keeps no other): which report, whose, and why it had
    been refused."""
    log.warning(
        "outcome report %d (ticket %s revision %d, %s) discarded unsent by %s; refused: %s",
        report.id,
        report.ticket_id,
        report.revision,
        report.stage,
        actor,
        report.refusal,
        extra={
            "actor": actor,
            "report_id": report.id,
            "ticket_id": str(report.ticket_id),
            "revision": report.revision,
        },
    )


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
