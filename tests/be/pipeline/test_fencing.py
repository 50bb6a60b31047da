"""The BE's side of the fencing (pipeline/fence.py): no platform call without the WM's lease on
the revision's generation, revisions of a past generation given up as Moved and reported, and
a revision sent back under a newer generation resumed. In process, on a real database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from be_service.pipeline import store
from be_service.pipeline.fence import Fence, LeaseGrant
from be_service.services import intake
from tests.be.conftest import later, make_ticket
from tests.be.pipeline.conftest import InProcessPipeline
from ticketing_common.contract import TicketDocument
from ticketing_common.db import session_scope


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def _fenced(clock: FakeClock, *, generation: int = 5, lease: float = 10.0) -> Fence:
    fence = Fence(enabled=True, clock=clock)
    fence.renew(LeaseGrant(generation, lease, max_call_seconds=3.0), sent_at=clock.now)
    return fence


def test_the_lease_counts_from_the_heartbeat_sent_and_covers_its_generation_only() -> None:
    clock = FakeClock()
    fence = _fenced(clock, generation=5, lease=10.0)
    assert fence.allows(5) and fence.allows(None)
    assert not fence.allows(4) and not fence.allows(6)
    clock.now += 9.9
    assert fence.allows(5)
    clock.now += 0.2
    assert not fence.allows(5) and fence.allows(None)
    assert fence.claimable_generation() == -1
    # A renewal with a new generation says so; its lease counts from the renewed heartbeat.
    assert fence.renew(LeaseGrant(6, 10.0, 3.0), sent_at=clock.now - 1) is True
    assert fence.allows(6) and not fence.allows(5)
    assert fence.call_timeout() == 3.0


def test_a_be_without_a_wm_is_not_fenced() -> None:
    fence = Fence(enabled=False)
    assert fence.allows(7) and fence.call_timeout() is None


async def _statuses(pipeline: InProcessPipeline) -> dict[int, str]:
    async for session in session_scope(pipeline.sessionmaker):
        rows = await (await session.connection()).execute(
            text("SELECT revision, status FROM ticket_revision ORDER BY revision")
        )
        return {revision: status for revision, status in rows}
    raise AssertionError("unreachable")


async def test_without_a_lease_nothing_reaches_the_platforms(pipeline: InProcessPipeline) -> None:
    """A BE cut off from the WM (its lease ran out) claims none of its fenced revisions and
    calls no platform; renewed, it sends them."""
    clock = FakeClock()
    pipeline.fence = _fenced(clock, generation=5)
    clock.now += 11  # the lease has lapsed
    ticket = make_ticket()
    await pipeline.intake(ticket, generation=5)
    assert await pipeline.drain() == 0
    assert await pipeline.platforms.requests("") == 0
    pipeline.fence.renew(LeaseGrant(5, 10.0, 3.0), sent_at=clock.now)
    assert await pipeline.drain() == 1
    [revision] = (await pipeline.ticket(ticket["ticket_id"])).revisions
    assert revision.status == "Completed"


async def test_a_lease_that_ends_mid_batch_stops_the_next_step(
    pipeline: InProcessPipeline,
) -> None:
    """The lease is checked before every call: once it ends, the revision waits at its step."""
    clock = FakeClock()
    pipeline.fence = _fenced(clock, generation=5)
    check = pipeline.platforms.step("check")
    original = check.send

    async def check_then_lapse(*args, **kwargs):  # type: ignore[no-untyped-def]
        outcomes = await original(*args, **kwargs)
        clock.now += 11
        return outcomes

    check.send = check_then_lapse  # type: ignore[method-assign]
    ticket = make_ticket()
    await pipeline.intake(ticket, generation=5)
    assert await pipeline.drain() == 1
    [revision] = (await pipeline.ticket(ticket["ticket_id"])).revisions
    assert (revision.status, revision.step) == ("Received", "create")
    assert [a.operation for a in revision.attempts] == ["check"]
    assert await pipeline.platforms.records("incident") == []


async def test_revisions_of_a_past_generation_are_given_up_as_moved_and_reported(
    pipeline: InProcessPipeline,
) -> None:
    """After a failover the BE's old copies are Moved (with a `moved` report each), its
    revisions of the current generation and those without one stay."""
    old, current, unfenced = make_ticket(), make_ticket(), make_ticket()
    await pipeline.intake(old, generation=4)
    await pipeline.intake(current, generation=5)
    await pipeline.intake(unfenced)
    async for session in session_scope(pipeline.sessionmaker):
        assert await store.mark_moved(session, generation=5, report=True) == 1
    by_ticket = {}
    for ticket in (old, current, unfenced):
        [revision] = (await pipeline.ticket(ticket["ticket_id"])).revisions
        by_ticket[ticket["ticket_id"]] = revision.status
    assert by_ticket == {
        old["ticket_id"]: "Moved",
        current["ticket_id"]: "Received",
        unfenced["ticket_id"]: "Received",
    }
    async for session in session_scope(pipeline.sessionmaker):
        rows = await (await session.connection()).execute(
            text("SELECT body FROM outcome_report ORDER BY id")
        )
        [report] = [body for (body,) in rows]
    assert (report["ticket_id"], report["stage"], report["generation"]) == (
        old["ticket_id"],
        "moved",
        4,
    )


async def test_a_moved_revision_sent_back_under_a_newer_generation_resumes(
    pipeline: InProcessPipeline,
) -> None:
    """An element that fails over back to this BE: its revision comes again with the new
    generation and is processed once; a resend under the old one changes nothing."""
    clock = FakeClock()
    pipeline.fence = _fenced(clock, generation=6)
    ticket = make_ticket()
    await pipeline.intake(ticket, generation=5)
    async for session in session_scope(pipeline.sessionmaker):
        await store.mark_moved(session, generation=6, report=False)
    await pipeline.intake(ticket, generation=5)
    assert await _statuses(pipeline) == {1: "Moved"}
    await pipeline.intake(ticket, generation=6)
    assert await _statuses(pipeline) == {1: "Received"}
    assert await pipeline.drain() == 1
    assert await _statuses(pipeline) == {1: "Completed"}
    assert len(await pipeline.platforms.records("incident")) == 1


async def test_an_old_revision_waits_for_its_moved_fate_before_a_newer_one_goes(
    pipeline: InProcessPipeline,
) -> None:
    """Per key order holds across generations: revision 2 (current) is not sent before
    revision 1 (past generation) is given up."""
    clock = FakeClock()
    pipeline.fence = _fenced(clock, generation=6)
    ticket = make_ticket()
    await pipeline.intake(ticket, generation=5)
    await pipeline.intake(later(ticket, 2, "update"), generation=6)
    assert await pipeline.drain() == 0
    async for session in session_scope(pipeline.sessionmaker):
        await store.mark_moved(session, generation=6, report=False)
    assert await pipeline.drain() == 1
    assert await _statuses(pipeline) == {1: "Moved", 2: "Completed"}


async def test_a_finished_copy_sent_back_under_a_newer_generation_reports_its_outcome_again(
    pipeline: InProcessPipeline,
) -> None:
    """Its report never reached the WM, which took the revision back after a failover and
    sent it here again: it is not sent to the platforms again, its outcome is reported anew
    under the new generation."""
    clock = FakeClock()
    pipeline.fence = _fenced(clock, generation=5)
    ticket = make_ticket()
    await pipeline.intake(ticket, generation=5)
    assert await pipeline.drain() == 1
    calls = await pipeline.platforms.requests("")
    async for session in session_scope(pipeline.sessionmaker):
        await intake.create(
            session, tickets=[TicketDocument.model_validate(ticket)], generation=6, report=True
        )
    assert await _statuses(pipeline) == {1: "Completed"}
    assert await pipeline.drain() == 0
    assert await pipeline.platforms.requests("") == calls
    async for session in session_scope(pipeline.sessionmaker):
        rows = await (await session.connection()).execute(
            text("SELECT body FROM outcome_report ORDER BY id")
        )
        bodies = [body for (body,) in rows]
    assert [(b["stage"], b["generation"]) for b in bodies] == [("completed", 6)]
