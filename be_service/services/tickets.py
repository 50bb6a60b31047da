"""Operator queries over ticket revisions and the retry requests that revive Error ones.

Lists are keyset-paginated by revision id (newest first); a retry starts a new round, so
the revision gets fresh retry counts and resumes from its recorded step.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, text, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service import reports
from be_service.models import OPERATOR_RETRY, ReportStage, Status, TicketAttempt, TicketRevision
from be_service.schemas import (
    AttemptPublic,
    RevisionDetail,
    RevisionSummary,
    TicketDetail,
    TicketPage,
)
from ticketing_common.cursor import KeysetCursor
from ticketing_common.errors import Conflict, NotFound


def _summary(row: TicketRevision) -> RevisionSummary:
    return RevisionSummary.model_validate(row, from_attributes=True)


_CURSOR = KeysetCursor(int)  # the revision id


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    (after,) = _CURSOR.decode(cursor)
    return int(after)


async def get_page(
    session: AsyncSession,
    *,
    status: Status | None,
    category: str | None,
    dedup_key: str | None,
    cursor: str | None,
    limit: int,
) -> TicketPage:
    """One page of revisions, newest first, and the counts per status under the same filters."""
    after = _decode_cursor(cursor)
    filters = []
    if category is not None:
        filters.append(col(TicketRevision.category) == category)
    if dedup_key is not None:
        filters.append(col(TicketRevision.dedup_key) == dedup_key)
    query = select(TicketRevision).where(*filters)
    if status is not None:
        query = query.where(col(TicketRevision.status) == status.value)
    if after is not None:
        query = query.where(col(TicketRevision.id) < after)
    query = query.order_by(col(TicketRevision.id).desc()).limit(limit + 1)
    rows = list(await session.exec(query))
    next_cursor = _CURSOR.encode(rows[limit - 1].id) if len(rows) > limit else None

    count_query = (
        select(col(TicketRevision.status), func.count())
        .where(*filters)
        .group_by(col(TicketRevision.status))
    )
    counts = {s.value: 0 for s in Status}
    for row_status, count in await session.exec(count_query):
        counts[row_status] = count
    return TicketPage(
        items=[_summary(r) for r in rows[:limit]], next_cursor=next_cursor, counts=counts
    )


async def get(session: AsyncSession, *, ticket_id: uuid.UUID) -> TicketDetail:
    """Every revision of a ticket with its platform ids and every attempt, oldest first."""
    revisions = list(
        await session.exec(
            select(TicketRevision)
            .where(col(TicketRevision.ticket_id) == ticket_id)
            .order_by(col(TicketRevision.revision))
        )
    )
    if not revisions:
        raise NotFound(f"ticket {ticket_id} is not known to this BE")
    attempts = await session.exec(
        select(TicketAttempt)
        .where(col(TicketAttempt.revision_id).in_([r.id for r in revisions]))
        .order_by(col(TicketAttempt.id))
    )
    by_revision: dict[int, list[AttemptPublic]] = {}
    for attempt in attempts:
        by_revision.setdefault(attempt.revision_id, []).append(
            AttemptPublic.model_validate(attempt, from_attributes=True)
        )
    return TicketDetail(
        ticket_id=ticket_id,
        dedup_key=revisions[-1].dedup_key,
        revisions=[
            RevisionDetail(
                **_summary(r).model_dump(),
                ticket=r.payload,
                attempts=by_revision.get(r.id or 0, []),
            )
            for r in revisions
        ],
    )


# An Error revision that would still add a note or create the incident, while a later clear
# of its ticket has already completed: the element has recovered, and sending the stale one
# now would open an incident for it. Only a clear supersedes: after a later open or update,
# the Error revision may be the only one that ever creates the work order (its create may
# have landed although its answer was lost), so it goes back to processing instead, where
# the check adopts the incident and the work order is upserted idempotently.
_COMPLETE_SUPERSEDED = text(
    """
    UPDATE ticket_revision t SET
        status = 'Completed', step = 'done', retry_round = t.retry_round + 1,
        last_error = NULL, claimed_by = NULL, claimed_until = NULL,
        completed_at = now(), updated_at = now()
    FROM (
        SELECT r.id, max(l.revision) AS later
        FROM ticket_revision r
        JOIN ticket_revision l
          ON l.ticket_id = r.ticket_id AND l.revision > r.revision AND l.status = 'Completed'
         AND l.action = 'clear'
        WHERE r.status = 'Error'
          AND (CAST(:ticket_id AS uuid) IS NULL OR r.ticket_id = CAST(:ticket_id AS uuid))
          AND (CAST(:kind AS text) IS NULL OR r.kind = CAST(:kind AS text))
          AND (CAST(:market AS text) IS NULL
               OR r.payload->'location'->>'market' = CAST(:market AS text))
          AND (CAST(:operation AS text) IS NULL OR r.step = CAST(:operation AS text))
          AND (r.step IN ('check', 'note')
               OR (r.step = 'create' AND r.platform_ids->'cherwell'->>'rec_id' IS NULL))
        GROUP BY r.id
    ) s
    WHERE t.id = s.id
    RETURNING t.id, t.retry_round, s.later
    """
)


@dataclass(frozen=True)
class ErrorFilter:
    """Which Error revisions a re-drive takes: all, or those of a kind, a market or a failed
    step (the step a revision stopped at is the operation that failed)."""

    kind: str | None = None
    market: str | None = None
    operation: str | None = None


async def _retry(
    session: AsyncSession,
    *,
    ticket_id: uuid.UUID | None,
    report: bool,
    only: ErrorFilter = ErrorFilter(),
) -> int:
    """Send Error revisions back to processing in a new round, with a history row each;
    those superseded by a later Completed revision complete at once without platform calls.
    With `report`, each leaves an outcome report for the WM (at_backend, or completed)."""
    parameters = {"ticket_id": ticket_id, **asdict(only)}
    superseded = (
        await (await session.connection()).execute(_COMPLETE_SUPERSEDED, parameters)
    ).all()
    statement = (
        update(TicketRevision)
        .where(col(TicketRevision.status) == Status.error.value)
        .values(
            status=Status.received.value,
            retry_round=TicketRevision.retry_round + 1,
            claimed_by=None,
            claimed_until=None,
            updated_at=func.now(),
        )
        .returning(col(TicketRevision.id), col(TicketRevision.retry_round))
    )
    if ticket_id is not None:
        statement = statement.where(col(TicketRevision.ticket_id) == ticket_id)
    if only.kind is not None:
        statement = statement.where(col(TicketRevision.kind) == only.kind)
    if only.market is not None:
        market = TicketRevision.payload["location"]["market"].astext
        statement = statement.where(market == only.market)
    if only.operation is not None:
        statement = statement.where(col(TicketRevision.step) == only.operation)
    revived = (await session.exec(statement)).all()
    if report:
        stages = {revision_id: ReportStage.at_backend for revision_id, _ in revived}
        stages |= {revision_id: ReportStage.completed for revision_id, _, _ in superseded}
        await reports.record(session, stages)
    return await _add_history(session, revived=revived, superseded=superseded)


async def _add_history(
    session: AsyncSession,
    *,
    revived: Sequence[tuple[int, int]],
    superseded: Sequence[Any],
) -> int:
    """One operator_retry row per revision the retry moved; how many there were."""
    now = datetime.now(UTC)
    history = [
        (revision_id, retry_round, "sent back to processing by an operator")
        for revision_id, retry_round in revived
    ] + [
        (
            revision_id,
            retry_round,
            f"retried by an operator but superseded by revision {later}, already Completed: "
            "completed without platform calls",
        )
        for revision_id, retry_round, later in superseded
    ]
    session.add_all(
        TicketAttempt(
            revision_id=revision_id,
            retry_round=retry_round,
            operation=OPERATOR_RETRY,
            at=now,
            ok=True,
            response=response,
        )
        for revision_id, retry_round, response in history
    )
    await session.flush()
    return len(history)


async def retry(session: AsyncSession, *, ticket_id: uuid.UUID, report: bool = False) -> int:
    """Retry one ticket's Error revisions; 404 for an unknown ticket, 409 without errors."""
    known = await session.scalar(
        select(func.count()).where(col(TicketRevision.ticket_id) == ticket_id)
    )
    if not known:
        raise NotFound(f"ticket {ticket_id} is not known to this BE")
    retried = await _retry(session, ticket_id=ticket_id, report=report)
    if not retried:
        raise Conflict(f"ticket {ticket_id} has no revision in Error")
    return retried


async def retry_errors(
    session: AsyncSession, *, report: bool = False, only: ErrorFilter = ErrorFilter()
) -> int:
    """Retry every Error revision of this BE that `only` takes."""
    return await _retry(session, ticket_id=None, report=report, only=only)
