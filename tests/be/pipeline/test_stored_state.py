"""The revisions by status and step that every heartbeat and scrape read (be_service/
metrics.py): the same counts as grouping the whole table, without reading its Completed
rows (counted from the status index, their step being `done`)."""

from __future__ import annotations

from sqlalchemy import text

from be_service.metrics import read_stored_state
from tests.be.conftest import make_ticket
from tests.be.pipeline.conftest import InProcessPipeline
from ticketing_common.db import session_scope

_EVERY_ROW = text("SELECT status, step, count(*) FROM ticket_revision GROUP BY status, step")


async def _counts(pipeline: InProcessPipeline) -> tuple[dict[tuple[str, str], int], ...]:
    async for session in session_scope(pipeline.sessionmaker):
        state = await read_stored_state(session, processing_default=True)
        every = await (await session.connection()).execute(_EVERY_ROW)
        return state.revisions, {(status, step): n for status, step, n in every}
    raise AssertionError("unreachable")


async def test_the_counts_match_grouping_every_row_in_every_status(pipeline: InProcessPipeline):
    # Nothing stored: no row at all, not a Completed row of zero.
    assert await _counts(pipeline) == ({}, {})

    await pipeline.intake(*(make_ticket() for _ in range(3)))
    await pipeline.drain()  # three Completed, by the pipeline
    await pipeline.intake(*(make_ticket() for _ in range(4)))  # four Received at the check
    async for session in session_scope(pipeline.sessionmaker):
        # One given up by a failover, one in Error at its create step.
        await (await session.connection()).execute(
            text(
                "UPDATE ticket_revision SET status = CASE WHEN id = m.lo THEN 'Moved' "
                "ELSE 'Error' END, step = CASE WHEN id = m.lo THEN 'check' ELSE 'create' END "
                "FROM (SELECT min(id) AS lo, min(id) + 1 AS hi FROM ticket_revision "
                "WHERE status = 'Received') AS m WHERE id IN (m.lo, m.hi)"
            )
        )

    ours, every = await _counts(pipeline)
    assert (
        ours
        == every
        == {
            ("Completed", "done"): 3,
            ("Received", "check"): 2,
            ("Moved", "check"): 1,
            ("Error", "create"): 1,
        }
    )
