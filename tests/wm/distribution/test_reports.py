"""Outcome reports applied to the outbox: newest seq wins, only from the BE holding the
revision, idempotent on resend (wm_service/distribution/reports.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.wm.distribution.conftest import Outbox, scope
from ticketing_common.outcome import OutcomeReport
from wm_service.distribution import reports
from wm_service.models import TicketDelivery

KEY = "snr-upstream:RPT-CCAP01:US-1"


def report(ticket_id: uuid.UUID, seq: int, stage: str, **extra: Any) -> OutcomeReport:
    values: dict[str, Any] = {
        "ticket_id": ticket_id,
        "revision": 1,
        "seq": seq,
        "stage": stage,
        "at": datetime.now(UTC),
    }
    if stage == "completed":
        values |= {"incident_public_id": "100001", "work_order_number": "00000042"}
    if stage == "error":
        values |= {"operation": "create", "error": "HTTP 400: bad field"}
    return OutcomeReport.model_validate(values | extra)


@dataclass(frozen=True)
class Case:
    name: str
    batches: list[list[tuple[int, str]]]  # (seq, stage) per report, one list per POST
    stage: str  # the delivery's stage at the end
    counts: list[tuple[int, int]]  # (applied, ignored) per POST
    backend: str = "be-1"
    revision: int = 1


CASES = [
    Case(
        "in order",
        [[(1, "error")], [(2, "at_backend")], [(3, "completed")]],
        "completed",
        [(1, 0), (1, 0), (1, 0)],
    ),
    Case(
        "completed first, then the older ones",
        [[(3, "completed")], [(1, "error")], [(2, "at_backend")]],
        "completed",
        [(1, 0), (0, 1), (0, 1)],
    ),
    Case(
        "one batch, any order",
        [[(2, "at_backend"), (3, "completed"), (1, "error")]],
        "completed",
        [(1, 2)],
    ),
    Case("resend", [[(1, "completed")], [(1, "completed")]], "completed", [(1, 0), (0, 1)]),
    Case("another BE", [[(1, "completed")]], "at_backend", [(0, 1)], backend="be-2"),
    Case("unknown revision", [[(1, "completed")]], "at_backend", [(0, 1)], revision=9),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_report_application(
    case: Case, outbox: Outbox, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Whatever the order and the sender, the delivery ends at the newest report of its BE."""
    await outbox.add([KEY])
    await _deliver(sessionmaker, backend="be-1")
    counts = []
    for batch in case.batches:
        sent = [report(outbox.tickets[KEY], s, st, revision=case.revision) for s, st in batch]
        async with scope(sessionmaker) as session:
            result = await reports.apply(session, backend_name=case.backend, reports=sent)
        counts.append((result.applied, result.ignored))
    (row,) = await outbox.rows()
    assert counts == case.counts
    assert row.stage == case.stage
    if case.stage == "completed":
        assert (row.incident_public_id, row.work_order_number) == ("100001", "00000042")
        assert row.outcome_error is None


async def test_an_error_report_keeps_the_operation_and_the_message(
    outbox: Outbox, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """An error shows which operation failed and the platform's message."""
    await outbox.add([KEY])
    await _deliver(sessionmaker, backend="be-1")
    async with scope(sessionmaker) as session:
        await reports.apply(
            session, backend_name="be-1", reports=[report(outbox.tickets[KEY], 1, "error")]
        )
    (row,) = await outbox.rows()
    assert (row.stage, row.outcome_operation, row.outcome_error) == (
        "error",
        "create",
        "HTTP 400: bad field",
    )


async def test_a_report_of_another_generation_is_ignored(
    outbox: Outbox, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """With a generation on both sides, only the delivery's own generation applies."""
    await outbox.add([KEY])
    await _deliver(sessionmaker, backend="be-1", generation=5)
    ticket = outbox.tickets[KEY]
    async with scope(sessionmaker) as session:
        stale = await reports.apply(
            session, backend_name="be-1", reports=[report(ticket, 1, "completed", generation=4)]
        )
        fresh = await reports.apply(
            session, backend_name="be-1", reports=[report(ticket, 1, "completed", generation=5)]
        )
    assert (stale.applied, fresh.applied) == (0, 1)


async def _deliver(
    sessionmaker: async_sessionmaker[AsyncSession], *, backend: str, generation: int | None = None
) -> None:
    """Mark every outbox row delivered to `backend`, as the sender does after the BE's 2xx."""
    async with scope(sessionmaker) as session:
        await session.exec(
            update(TicketDelivery)
            .where(col(TicketDelivery.status) == "pending")
            .values(
                backend_name=backend, status="delivered", stage="at_backend", generation=generation
            )
        )
