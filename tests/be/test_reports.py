"""Outcome reports: written with the revision's state change, sent to the WM, deleted on its
ack and kept while it refuses (docs/contracts.md §8)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import select

from be_service.models import DONE, Status, TicketRevision
from be_service.pipeline import store
from be_service.pipeline.policy import RevisionUpdate, Transition
from be_service.services import intake
from tests.be.conftest import INTAKE_TOKEN, make_ticket, wait_until
from tests.support.servers import serve_in_thread
from ticketing_common.contract import TicketDocument
from ticketing_common.db import create_engine, make_sessionmaker, session_scope

_scope = contextlib.asynccontextmanager(session_scope)


class FakeWM:
    """A stand-in for the WM's report endpoint: remembers every report, answers `status`;
    its heartbeat answers grant a lease on `generation`."""

    def __init__(self, generation: int = 7) -> None:
        self.app = FastAPI()
        self.reports: list[dict[str, Any]] = []
        self.authorizations: set[str | None] = set()
        self.status = 200
        self.generation = generation
        # Tickets whose reports this WM refuses as invalid: a 422 naming them, nothing applied.
        self.refuse: set[str] = set()
        self.posts = 0
        lock = threading.Lock()

        @self.app.put("/api/v1/backends/{name}")
        async def put_backend(name: str) -> dict[str, Any]:
            lease = {"generation": self.generation, "lease_seconds": 30, "max_call_seconds": 20}
            return {"name": name, "lease": lease}

        @self.app.post("/api/v1/backends/{name}/reports")
        async def post_reports(name: str, request: Request) -> Response:
            body = await request.json()
            with lock:
                self.authorizations.add(request.headers.get("authorization"))
                self.posts += 1
                refused = [
                    {"field": f"reports[{i}].stage", "message": "Input should be 'completed'"}
                    for i, report in enumerate(body["reports"])
                    if report["ticket_id"] in self.refuse
                ]
                if refused:
                    error = {"code": "validation_error", "message": "", "details": refused}
                    return JSONResponse({"error": error}, status_code=422)
                if self.status < 300:
                    self.reports.extend(body["reports"])
            return Response(status_code=self.status, content=b"{}")


async def _execute(database_url: str, sql: str, **params: Any) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql), params)
    finally:
        await engine.dispose()


async def _read_outbox(database_url: str) -> list[dict[str, Any]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT body FROM outcome_report ORDER BY id"))
            return [body for (body,) in rows]
    finally:
        await engine.dispose()


def _outbox(database_url: str) -> list[dict[str, Any]]:
    return asyncio.run(_read_outbox(database_url))


def _reporting_be(make_be, wm: FakeWM, url: str, **overrides: Any):
    return make_be(wm_url=url, wm_token="wm-backend-token", report_poll_seconds=0.05, **overrides)


def test_completed_revision_is_reported_with_its_platform_ids(make_be, emulator):
    """A Completed revision reaches the WM with its incident and work-order ids; the outbox
    is empty once the WM acknowledged it."""
    wm = FakeWM()
    with serve_in_thread(wm.app) as server:
        be = _reporting_be(make_be, wm, server.url)
        ticket = make_ticket()
        be.client.post(
            "/api/v1/tickets",
            json={"generation": 7, "tickets": [ticket]},
            headers={"Authorization": f"Bearer {INTAKE_TOKEN}"},
        ).raise_for_status()
        be.wait_all(1)
        wait_until(lambda: wm.reports, what="a report on the WM")
        wait_until(lambda: not _outbox(be.settings.database_url.get_secret_value()), what="ack")
    (report,) = wm.reports
    incident = emulator.records("incident")[0]
    work_order = emulator.records("workorder")[0]
    assert report["ticket_id"] == ticket["ticket_id"] and report["revision"] == 1
    assert (report["seq"], report["stage"], report["generation"]) == (1, "completed", 7)
    assert report["incident_public_id"] == incident["IncidentID"]
    assert report["work_order_number"] == work_order["WorkOrderNumber"]
    assert report["error"] is None
    assert wm.authorizations == {"Bearer wm-backend-token"}


def test_error_and_redrive_are_reported_in_seq_order_and_kept_while_the_wm_refuses(
    make_be, emulator
):
    """Error then an operator's re-drive leave reports seq 1 (error, with the operation and
    the platform's message) and seq 2 (at_backend); a 503 from the WM keeps them."""
    wm = FakeWM()
    wm.status = 503
    with serve_in_thread(wm.app) as server:
        be = _reporting_be(make_be, wm, server.url, max_retries=0)
        emulator.faults(platform="cherwell", fail_next=1, status=400, endpoint="savebusiness")
        ticket = make_ticket()
        be.intake([ticket]).raise_for_status()
        be.wait_all(1, "Error")
        be.patch_settings(processing_enabled=False).raise_for_status()
        be.client.post(f"/api/v1/tickets/{ticket['ticket_id']}/retry").raise_for_status()
        url = be.settings.database_url.get_secret_value()
        kept = wait_until(lambda: len(_outbox(url)) == 2 and _outbox(url), what="two reports")
        assert not wm.reports
        wm.status = 200
        wait_until(lambda: len(wm.reports) == 2, what="both reports on the WM")
        wait_until(lambda: not _outbox(url), what="the outbox drained")
    assert [(r["seq"], r["stage"]) for r in kept] == [(1, "error"), (2, "at_backend")]
    assert kept[0]["operation"] == "create" and kept[0]["error"]
    assert [(r["seq"], r["stage"]) for r in wm.reports] == [(1, "error"), (2, "at_backend")]


def test_a_be_without_wm_keeps_no_reports(make_be, emulator):
    """A BE registered by hand (no BE_WM_URL) is standalone: it writes no reports."""
    be = make_be()
    be.intake([make_ticket()]).raise_for_status()
    be.wait_all(1)
    assert _outbox(be.settings.database_url.get_secret_value()) == []


class _Rollback(Exception):
    pass


async def test_a_report_exists_exactly_when_its_state_change_does(be_database_url):
    """update_revisions writes the report in the caller's transaction: a worker that lost
    the claim writes neither, a rolled-back transaction leaves neither, a commit both."""
    engine = create_engine(be_database_url, pool_size=2)
    sessionmaker = make_sessionmaker(engine)
    ticket = TicketDocument.model_validate(make_ticket())
    try:
        async with _scope(sessionmaker) as session:
            await intake.create(session, tickets=[ticket], generation=3)
            await session.exec(update(TicketRevision).values(claimed_by="w1"))
            (revision_id,) = (await session.exec(select(TicketRevision.id))).all()
        done = RevisionUpdate(
            id=revision_id,
            step=DONE,
            ids={},
            transition=Transition(Status.completed, keep_claim=False, delay=None, error=None),
        )
        async with _scope(sessionmaker) as session:
            await store.update_revisions(session, [done], worker="w2", report=True)
        with contextlib.suppress(_Rollback):
            async with _scope(sessionmaker) as session:
                await store.update_revisions(session, [done], worker="w1", report=True)
                raise _Rollback
        assert await _read_outbox(be_database_url) == []
        async with _scope(sessionmaker) as session:
            await store.update_revisions(session, [done], worker="w1", report=True)
    finally:
        await engine.dispose()
    (report,) = await _read_outbox(be_database_url)
    assert (report["seq"], report["stage"], report["generation"]) == (1, "completed", 3)


def _refused_rows(database_url: str) -> list[tuple[str, str]]:
    """(ticket_id, refusal) of the reports set aside."""

    async def read() -> list[tuple[str, str]]:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    text(
                        "SELECT body->>'ticket_id', refusal FROM outcome_report "
                        "WHERE refused_at IS NOT NULL ORDER BY id"
                    )
                )
                return [(ticket_id, refusal) for ticket_id, refusal in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_a_report_invalid_by_the_contract_is_set_aside_and_the_others_flow(make_be, emulator):
    """A report the contract refuses (a platform id longer than it allows) no longer holds
    up the outbox: it is set aside with why, counted, listed for the operator, and sent
    once fixed and put back in line; the reports behind it reach the WM meanwhile."""
    wm = FakeWM()
    wm.status = 503
    with serve_in_thread(wm.app) as server:
        be = _reporting_be(make_be, wm, server.url)
        url = be.settings.database_url.get_secret_value()
        poisoned, healthy = make_ticket(), make_ticket()
        be.intake([poisoned, healthy]).raise_for_status()
        be.wait_all(2)
        wait_until(lambda: len(_outbox(url)) == 2, what="both reports kept while the WM is down")
        long_id = "INC" + "9" * 100
        asyncio.run(
            _execute(
                url,
                "UPDATE outcome_report SET body = jsonb_set(body, '{incident_public_id}', "
                "to_jsonb(CAST(:long_id AS text))) WHERE ticket_id = :ticket_id",
                long_id=long_id,
                ticket_id=poisoned["ticket_id"],
            )
        )
        wm.status = 200
        wait_until(lambda: len(wm.reports) == 1, what="the healthy report on the WM")
        wait_until(lambda: _refused_rows(url), what="the invalid report set aside")
        assert [r["ticket_id"] for r in wm.reports] == [healthy["ticket_id"]]
        ((ticket_id, refusal),) = _refused_rows(url)
        assert ticket_id == poisoned["ticket_id"]
        assert refusal.startswith("incident_public_id: String should have at most 64")

        listing = be.client.get("/api/v1/outcome-reports", params={"state": "refused"})
        assert listing.status_code == 200, listing.text
        page = listing.json()
        assert (page["waiting"], page["refused"]) == (0, 1)
        (listed,) = page["reports"]
        assert listed["ticket_id"] == poisoned["ticket_id"] and listed["refusal"] == refusal
        assert (
            be.client.get("/api/v1/outcome-reports", params={"state": "waiting"}).json()["reports"]
            == []
        )
        metrics = be.client.get("/metrics").text
        assert 'be_outcome_reports{state="refused"} 1.0' in metrics
        assert 'be_outcome_reports{state="waiting"} 0.0' in metrics

        # Put back in line as it is, it is refused again and kept.
        assert be.client.post("/api/v1/outcome-reports/retry").json() == {"retried": 1}
        wait_until(lambda: _refused_rows(url), what="refused again")
        assert len(wm.reports) == 1
        # Once fixed, the operator's retry sends it at once (not at its next retry).
        asyncio.run(
            _execute(
                url,
                "UPDATE outcome_report SET body = jsonb_set(body, '{incident_public_id}', "
                "to_jsonb(CAST('INC42' AS text)))",
            )
        )
        assert be.client.post("/api/v1/outcome-reports/retry").json() == {"retried": 1}
        wait_until(lambda: len(wm.reports) == 2, what="the fixed report on the WM")
        wait_until(lambda: not _outbox(url), what="the outbox drained")
    assert wm.reports[1]["ticket_id"] == poisoned["ticket_id"]
    assert wm.reports[1]["incident_public_id"] == "INC42"


def test_a_report_the_wm_names_in_a_422_is_set_aside_and_tried_again(make_be, emulator):
    """A WM refusing one report of a batch as invalid (a 422 naming `reports[i]`; say a
    WM of another version) applies none of it: that report is set aside, the rest go on
    the next pass, and the set-aside one is tried again after BE_REPORT_REFUSED_RETRY_SECONDS,
    so it arrives once the WM takes it. A 422 naming no report sets nothing aside."""
    wm = FakeWM()
    wm.status = 422  # naming no report
    tickets = [make_ticket() for _ in range(3)]
    odd_one = tickets[1]["ticket_id"]
    with serve_in_thread(wm.app) as server:
        be = _reporting_be(make_be, wm, server.url, report_refused_retry_seconds=2.0)
        url = be.settings.database_url.get_secret_value()
        be.intake(tickets).raise_for_status()
        be.wait_all(3)
        wait_until(lambda: len(_outbox(url)) == 3, what="three reports")
        posts = wm.posts
        wait_until(lambda: wm.posts >= posts + 2, what="two more refused batches")
        assert _refused_rows(url) == [] and len(_outbox(url)) == 3 and not wm.reports
        wm.status, wm.refuse = 200, {odd_one}
        wait_until(lambda: len(wm.reports) == 2, what="the other two reports on the WM")
        ((ticket_id, refusal),) = _refused_rows(url)
        assert ticket_id == odd_one
        assert refusal.startswith("the WM refused it: reports[")
        assert refusal.endswith(".stage: Input should be 'completed'")
        wm.refuse = set()
        wait_until(lambda: len(wm.reports) == 3, timeout=15, what="the retry after 2 s")
        wait_until(lambda: not _outbox(url), what="the outbox drained")
    assert sorted(r["ticket_id"] for r in wm.reports) == sorted(t["ticket_id"] for t in tickets)
    assert wm.reports[2]["ticket_id"] == odd_one
