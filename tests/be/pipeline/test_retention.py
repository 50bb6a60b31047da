"""Retention on a BE (be_service/retention.py): finished revisions past the horizon go with
their attempts; Received, Error, the latest revision of an open ticket and a clear the WM has
not acknowledged stay. Ages are the documents' generated_at against an injected clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import text

from be_service import retention
from tests.be.conftest import later, make_ticket
from tests.be.pipeline.conftest import InProcessPipeline
from ticketing_common.db import session_scope
from ticketing_common.retention import RetentionPolicy, RetentionWorker

T0 = datetime(2026, 9, 1, tzinfo=UTC)


def _at(ticket: dict[str, Any], day: int) -> dict[str, Any]:
    return {**ticket, "generated_at": (T0 + timedelta(days=day)).isoformat()}


async def _sql(pipeline: InProcessPipeline, statement: str, **params: Any) -> list[Any]:
    rows: list[Any] = []
    async for session in session_scope(pipeline.sessionmaker):
        result = await (await session.connection()).execute(text(statement), params)
        rows = list(result.all()) if result.returns_rows else []
    return rows


async def _set(pipeline: InProcessPipeline, ticket: dict[str, Any], status: str) -> None:
    await _sql(
        pipeline,
        "UPDATE ticket_revision SET status = :status WHERE ticket_id = :id AND revision = :rev",
        status=status,
        id=uuid.UUID(ticket["ticket_id"]),
        rev=ticket["revision"],
    )


def _worker(
    pipeline: InProcessPipeline, *, now: datetime, batch_size: int = 1000
) -> RetentionWorker:
    counter = Counter("pruned", "rows", ["table"], registry=CollectorRegistry())
    return RetentionWorker(
        pipeline.sessionmaker,
        policy=RetentionPolicy(days=30, batch_size=batch_size, pause_seconds=0),
        steps=retention.STEPS,
        clock=lambda: now,
        pruned=counter,
        service="be-test",
    )


async def _left(pipeline: InProcessPipeline) -> set[tuple[str, int]]:
    rows = await _sql(pipeline, "SELECT dedup_key, revision FROM ticket_revision")
    return {(key, revision) for key, revision in rows}


async def test_finished_revisions_past_the_horizon_go_and_the_rest_stays(
    pipeline: InProcessPipeline,
) -> None:
    over, open_, error, waiting, moved, unacked = (make_ticket() for _ in range(6))
    over_clear, open_update, unacked_clear = (
        later(over, 2, "clear"),
        later(open_, 2, "update"),
        later(unacked, 2, "clear"),
    )
    await pipeline.intake(
        _at(over, 0),
        _at(over_clear, 1),
        _at(open_, 0),
        _at(open_update, 1),
        _at(error, 0),
        _at(waiting, 0),
        _at(moved, 0),
        _at(unacked, 0),
        _at(unacked_clear, 1),
    )
    for ticket in (over, over_clear, open_, open_update, unacked, unacked_clear):
        await _set(pipeline, ticket, "Completed")
    await _set(pipeline, error, "Error")
    await _set(pipeline, moved, "Moved")
    await _sql(
        pipeline,
        "INSERT INTO ticket_attempt (revision_id, retry_round, operation, at, ok) "
        "SELECT id, 0, 'check', now(), true FROM ticket_revision WHERE ticket_id = :id",
        id=uuid.UUID(over["ticket_id"]),
    )
    await _sql(
        pipeline,
        "INSERT INTO outcome_report (ticket_id, revision, seq, stage, body, created_at) "
        "VALUES (:id, 2, 1, 'completed', '{}', now())",
        id=uuid.UUID(unacked["ticket_id"]),
    )

    pruned = await _worker(pipeline, now=T0 + timedelta(days=40)).prune_once()

    assert dict(pruned) == {"ticket_revision": 5, "ticket_attempt": 2}
    assert await _left(pipeline) == {
        (open_["dedup_key"], 2),  # the latest revision of an open ticket
        (error["dedup_key"], 1),
        (waiting["dedup_key"], 1),
        (unacked["dedup_key"], 2),  # its completion not yet acknowledged by the WM
    }


async def test_nothing_younger_than_the_horizon_goes_in_any_batch_size(
    pipeline: InProcessPipeline,
) -> None:
    tickets = [make_ticket() for _ in range(5)]
    clears = [later(t, 2, "clear") for t in tickets]
    await pipeline.intake(
        *(_at(t, day) for day, t in enumerate(tickets)),
        *(_at(c, day) for day, c in enumerate(clears)),
    )
    await _sql(pipeline, "UPDATE ticket_revision SET status = 'Completed'")
    # Horizon at day 2.5: the clears of days 0, 1 and 2 (and their opens) are past it.
    pruned = await _worker(
        pipeline, now=T0 + timedelta(days=32, hours=12), batch_size=1
    ).prune_once()
    assert pruned["ticket_revision"] == 6
    assert await _left(pipeline) == {(c["dedup_key"], r) for c in clears[3:] for r in (1, 2)}
