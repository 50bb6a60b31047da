"""Outcome reports: written with the revision's state change, sent to the WM, deleted on its
ack and kept while it refuses (docs/contracts.md §10)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import select

from be_service import reports
from be_service.models import DONE, ReportStage, Status, TicketRevision
from be_service.pipeline import store
from be_service.pipeline.policy import RevisionUpdate, Transition
from be_service.services import intake
from tests.be.conftest import INTAKE_TOKEN, make_ticket, wait_until
from tests.support.servers import serve_in_thread
from tests.wm.conftest import BACKEND, wm_settings
from ticketing_common.contract import TicketDocument
from ticketing_common.db import create_engine, make_sessionmaker, session_scope
from wm_service.main import create_app as create_wm_app

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


async def _fetch(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(text(sql))]
    finally:
        await engine.dispose()


async def _read_outbox(database_url: str) -> list[dict[str, Any]]:
    rows = await _fetch(database_url, "SELECT body FROM outcome_report ORDER BY id")
    return [body for (body,) in rows]


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


def _refused_rows(database_url: str) -> list[tuple[Any, ...]]:
    """(ticket_id, refusal, refused_at) of the reports set aside."""
    sql = (
        "SELECT body->>'ticket_id', refusal, refused_at FROM outcome_report "
        "WHERE refused_at IS NOT NULL ORDER BY id"
    )
    return asyncio.run(_fetch(database_url, sql))


def _set_public_id(database_url: str, public_id: str, ticket_id: str | None = None) -> None:
    """Rewrite the incident number in stored reports (of one ticket, or all)."""
    asyncio.run(
        _execute(
            database_url,
            "UPDATE outcome_report SET body = jsonb_set(body, '{incident_public_id}', "
            "to_jsonb(CAST(:public_id AS text))) "
            "WHERE CAST(:ticket_id AS text) IS NULL OR ticket_id = CAST(:ticket_id AS uuid)",
            public_id=public_id,
            ticket_id=ticket_id,
        )
    )


TOO_LONG = "INC" + "9" * 100  # past the contract's 64 characters


def _one_report_refused_one_waiting(make_be, wm: FakeWM, wm_url: str):
    """A reporting BE with two completed tickets whose reports the WM has not taken (it
    answers 503): the first's set aside as invalid (an incident number past the contract's
    length; set aside with the WM down, so an outage does not hide it), the second's
    waiting. The BE, its database URL and the two tickets."""
    wm.status = 503
    be = _reporting_be(make_be, wm, wm_url)
    url = be.settings.database_url.get_secret_value()
    tickets = [make_ticket(), make_ticket()]
    be.intake(tickets).raise_for_status()
    be.wait_all(2)
    wait_until(lambda: len(_outbox(url)) == 2, what="both reports kept while the WM is down")
    _set_public_id(url, TOO_LONG, tickets[0]["ticket_id"])
    wait_until(lambda: _refused_rows(url), what="the invalid report set aside")
    return be, url, tickets


def test_a_report_invalid_by_the_contract_is_set_aside_and_the_others_flow(make_be, emulator):
    """A report the contract refuses (a platform id longer than it allows) no longer holds
    up the outbox: it is set aside with why, counted, listed for the operator, and sent
    once fixed and put back in line; the reports behind it reach the WM meanwhile."""
    wm = FakeWM()
    with serve_in_thread(wm.app) as server:
        be, url, (poisoned, healthy) = _one_report_refused_one_waiting(make_be, wm, server.url)
        assert not wm.reports
        wm.status = 200
        wait_until(lambda: len(wm.reports) == 1, what="the healthy report on the WM")
        assert [r["ticket_id"] for r in wm.reports] == [healthy["ticket_id"]]
        ((ticket_id, refusal, first_refused_at),) = _refused_rows(url)
        assert ticket_id == poisoned["ticket_id"]
        assert refusal.startswith("incident_public_id: String should have at most 64")

        listing = be.client.get("/api/v1/outcome-reports", params={"state": "refused"})
        assert listing.status_code == 200, listing.text
        page = listing.json()
        assert (page["waiting"], page["refused"]) == (0, 1)
        (listed,) = page["reports"]
        assert listed["ticket_id"] == poisoned["ticket_id"] and listed["refusal"] == refusal
        waiting = be.client.get("/api/v1/outcome-reports", params={"state": "waiting"})
        assert waiting.json()["reports"] == []
        metrics = be.client.get("/metrics").text
        assert 'be_outcome_reports{state="refused"} 1.0' in metrics
        assert 'be_outcome_reports{state="waiting"} 0.0' in metrics

        # Put back in line as it is, it is tried, refused again and kept.
        assert be.client.post("/api/v1/outcome-reports/retry").json() == {"retried": 1}
        wait_until(
            lambda: [at for _, _, at in _refused_rows(url)] > [first_refused_at],
            what="tried and refused again",
        )
        assert len(wm.reports) == 1
        # Once fixed, the operator's retry sends it at once (not at its next retry).
        _set_public_id(url, "INC42")
        assert be.client.post("/api/v1/outcome-reports/retry").json() == {"retried": 1}
        wait_until(lambda: len(wm.reports) == 2, what="the fixed report on the WM")
        wait_until(lambda: not _outbox(url), what="the outbox drained")
    assert wm.reports[1]["ticket_id"] == poisoned["ticket_id"]
    assert wm.reports[1]["incident_public_id"] == "INC42"


def test_a_report_the_wm_names_in_a_422_is_set_aside_and_tried_again(make_be, emulator):
    """A WM refusing one report of a batch as invalid (a 422 naming `reports[i]`; say a WM
    of another version) applies none of it: that report is set aside and the rest go again
    at once, also past a report this BE set aside itself (the 422's index is into what was
    sent); the set-aside one is tried again after BE_REPORT_REFUSED_RETRY_SECONDS, so it
    arrives once the WM takes it. A 422 naming no report sets nothing aside."""
    wm = FakeWM()
    wm.status = 422  # naming no report
    tickets = [make_ticket() for _ in range(3)]
    invalid_here, refused_there, fine = (t["ticket_id"] for t in tickets)
    with serve_in_thread(wm.app) as server:
        be = _reporting_be(make_be, wm, server.url, report_refused_retry_seconds=2.0)
        url = be.settings.database_url.get_secret_value()
        be.intake(tickets).raise_for_status()
        be.wait_all(3)
        wait_until(lambda: len(_outbox(url)) == 3, what="three reports")
        posts = wm.posts
        wait_until(lambda: wm.posts >= posts + 2, what="two more refused batches")
        assert _refused_rows(url) == [] and len(_outbox(url)) == 3 and not wm.reports

        # Made invalid while the WM still refuses everything: no pass can send the old body.
        _set_public_id(url, TOO_LONG, invalid_here)
        wait_until(lambda: _refused_rows(url), what="the invalid report set aside")
        wm.refuse = {refused_there}  # before the status: no batch may go through whole
        wm.status = 200
        wait_until(lambda: len(wm.reports) == 1, what="the fine report on the WM")
        assert wm.reports[0]["ticket_id"] == fine
        wait_until(lambda: len(_refused_rows(url)) == 2, what="both set aside")
        refused = {ticket_id: why for ticket_id, why, _ in _refused_rows(url)}
        assert refused[invalid_here].startswith("incident_public_id: ")
        # Which index depends on the order the revisions completed in; a wrong mapping from
        # index to row would have set `fine` aside instead, and sent this one.
        assert re.match(r"the WM refused it: reports\[[01]\]\.stage: ", refused[refused_there])

        wm.refuse = set()
        wait_until(lambda: len(wm.reports) == 2, timeout=15, what="the retry after 2 s")
        assert wm.reports[1]["ticket_id"] == refused_there
        assert [t for t, _, _ in _refused_rows(url)] == [invalid_here]


async def _stored_reports(
    sessionmaker, tickets, stage: ReportStage = ReportStage.completed
) -> list[int]:
    """The tickets' revisions, each with a report of `stage` in the outbox (as the pipeline
    writes them); their ids, in the tickets' order."""
    async with _scope(sessionmaker) as session:
        await intake.create(session, tickets=tickets, generation=3)
        revisions = (await session.exec(select(TicketRevision))).all()
        by_ticket = {r.ticket_id: r.id for r in revisions}
        ids = [by_ticket[t.ticket_id] for t in tickets]
        await reports.record(session, {i: stage for i in ids})
    return [i for i in ids if i is not None]


async def _send_once(sessionmaker, wm: Callable[[httpx.Request], Any]) -> int:
    """One reporter pass against `wm`, a stand-in for the WM's report endpoint."""
    async with httpx.AsyncClient(transport=httpx.MockTransport(wm)) as http:
        reporter = reports.Reporter(
            sessionmaker=sessionmaker, http=http, url="http://wm/r", token=None
        )
        return await reporter.send_once()


async def test_a_refused_report_a_newer_one_supersedes_is_dropped(be_database_url):
    """Once a newer report of the same revision exists, a set-aside report would be ignored
    by the WM: when it comes due it is dropped, not sent (and no longer counted or alerted
    on); one nothing supersedes is tried again."""
    engine = create_engine(be_database_url, pool_size=2)
    sessionmaker = make_sessionmaker(engine)
    tickets = [TicketDocument.model_validate(make_ticket()) for _ in range(2)]
    sent: list[dict[str, Any]] = []

    def wm(request: httpx.Request) -> httpx.Response:
        sent.extend(json.loads(request.content)["reports"])
        return httpx.Response(200, json={"applied": 1, "ignored": 0})

    try:
        ids = await _stored_reports(sessionmaker, tickets, ReportStage.error)
        async with _scope(sessionmaker) as session:
            await session.exec(
                text("UPDATE outcome_report SET refused_at = now() - interval '1 hour'")
            )
            # A newer report of the first revision only (an operator's re-drive, say).
            await reports.record(session, {ids[0]: ReportStage.at_backend})
        assert await _send_once(sessionmaker, wm) == 3  # one dropped, two sent
    finally:
        await engine.dispose()
    assert sorted((r["seq"], r["stage"]) for r in sent) == [(1, "error"), (2, "at_backend")]
    assert {r["ticket_id"] for r in sent if r["stage"] == "error"} == {str(tickets[1].ticket_id)}
    assert await _read_outbox(be_database_url) == []


async def test_the_real_wms_422_names_the_report_it_refuses(wm_database_url, tmp_path):
    """The index this BE reads from a 422 is the one the WM writes: a real WM refusing the
    second report of a batch names `reports[1]`."""
    app = create_wm_app(wm_settings(wm_database_url, tmp_path))
    good = {
        "ticket_id": str(uuid.uuid4()),
        "revision": 1,
        "seq": 1,
        "stage": "completed",
        "at": "2026-12-03T10:00:00Z",
    }
    batch = {"reports": [good, good | {"stage": "lost"}, good]}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://wm") as wm,
    ):
        response = await wm.post("/api/v1/backends/be-1/reports", json=batch, headers=BACKEND)
    assert response.status_code == 422, response.text
    named = reports._named_by_422(response, [10, 11, 12])
    assert list(named) == [11]
    assert named[11].startswith("the WM refused it: reports[1].stage: ")


async def test_the_rest_of_a_batch_the_wm_answered_422_goes_again_in_the_same_pass(
    be_database_url,
):
    """A 422 naming one report applies nothing: the others are sent again at once, not a poll
    interval later, and that one is set aside."""
    engine = create_engine(be_database_url, pool_size=2)
    sessionmaker = make_sessionmaker(engine)
    posts: list[list[str]] = []

    def wm(request: httpx.Request) -> httpx.Response:
        batch = json.loads(request.content)["reports"]
        posts.append([r["ticket_id"] for r in batch])
        if len(posts) == 1:
            detail = {"field": "reports[0].stage", "message": "Input should be 'completed'"}
            return httpx.Response(422, json={"error": {"details": [detail]}})
        return httpx.Response(200, json={"applied": len(batch), "ignored": 0})

    try:
        tickets = [TicketDocument.model_validate(make_ticket()) for _ in range(2)]
        await _stored_reports(sessionmaker, tickets)
        assert await _send_once(sessionmaker, wm) == 2  # one set aside, one acknowledged
    finally:
        await engine.dispose()
    assert len(posts) == 2 and posts[1] == posts[0][1:]
    ((ticket_id, refusal, _),) = await asyncio.to_thread(_refused_rows, be_database_url)
    assert ticket_id == posts[0][0] and refusal.startswith("the WM refused it: reports[0]")


async def test_an_operators_retry_during_a_pass_is_not_undone(be_database_url):
    """A pass reads a refused report that has come due; while it posts, an operator puts the
    refused reports back in line; the WM's 422 for it then does not set it aside again."""
    engine = create_engine(be_database_url, pool_size=2)
    sessionmaker = make_sessionmaker(engine)

    async def wm(request: httpx.Request) -> httpx.Response:
        async with _scope(sessionmaker) as session:
            assert await reports.retry_refused(session) == 1
        detail = {"field": "reports[0].stage", "message": "still refused"}
        return httpx.Response(422, json={"error": {"details": [detail]}})

    try:
        await _stored_reports(sessionmaker, [TicketDocument.model_validate(make_ticket())])
        async with _scope(sessionmaker) as session:
            await session.exec(
                text(
                    "UPDATE outcome_report SET refused_at = now() - interval '1 hour', "
                    "refusal = 'earlier'"
                )
            )
        assert await _send_once(sessionmaker, wm) == 0  # nothing set aside, nothing sent
    finally:
        await engine.dispose()
    assert await asyncio.to_thread(_refused_rows, be_database_url) == []
    assert len(await _read_outbox(be_database_url)) == 1  # back in line, as the operator asked


def test_an_operator_discards_a_refused_report_and_only_a_refused_one(make_be, emulator, caplog):
    """A report no fix will make acceptable can be deleted unsent, by id, naming who: it is
    no longer counted (the refused alert ends), the log says who discarded what and why it
    was refused; a report waiting its turn cannot be (409), nor one already gone (404)."""
    wm = FakeWM()
    with serve_in_thread(wm.app) as server:
        be, url, (hopeless, fine) = _one_report_refused_one_waiting(make_be, wm, server.url)
        reports_by_ticket = {
            r["ticket_id"]: r["id"]
            for r in be.client.get("/api/v1/outcome-reports").json()["reports"]
        }
        refused_id, waiting_id = (
            reports_by_ticket[hopeless["ticket_id"]],
            reports_by_ticket[fine["ticket_id"]],
        )
        discard = "/api/v1/outcome-reports/{}/discard"

        assert (
            httpx.post(be.url + discard.format(refused_id), params={"actor": "ana"}).status_code
            == 401
        )
        no_actor = be.client.post(discard.format(refused_id))
        assert no_actor.status_code == 422 and "actor" in no_actor.text
        assert be.client.post(discard.format(2**63), params={"actor": "ana"}).status_code == 422
        waiting = be.client.post(discard.format(waiting_id), params={"actor": "ana"})
        assert waiting.status_code == 409, waiting.text
        assert "waits its turn" in waiting.json()["error"]["message"]
        assert len(_outbox(url)) == 2  # a refused answer changed nothing

        caplog.set_level("WARNING", logger="be_service.reports")
        discarded = be.client.post(discard.format(refused_id), params={"actor": "ana"})
        assert discarded.status_code == 200, discarded.text
        body = discarded.json()
        assert (body["id"], body["ticket_id"]) == (refused_id, hopeless["ticket_id"])
        assert body["refusal"].startswith("incident_public_id: String should have at most 64")
        # Logged once committed, so just after the answer.
        (line,) = wait_until(
            lambda: [r for r in caplog.records if "discarded unsent" in r.getMessage()],
            what="the discard's log line",
        )
        assert "by ana" in line.getMessage() and hopeless["ticket_id"] in line.getMessage()
        assert "incident_public_id" in line.getMessage() and line.report_id == refused_id
        page = be.client.get("/api/v1/outcome-reports").json()
        assert (page["waiting"], page["refused"]) == (1, 0)
        assert [r["ticket_id"] for r in _outbox(url)] == [fine["ticket_id"]]
        assert 'be_outcome_reports{state="refused"} 0.0' in be.client.get("/metrics").text

        again = be.client.post(discard.format(refused_id), params={"actor": "ana"})
        assert again.status_code == 404, again.text
        # The other flows as before once the WM answers.
        wm.status = 200
        wait_until(lambda: not _outbox(url), what="the outbox drained")
    assert [r["ticket_id"] for r in wm.reports] == [fine["ticket_id"]]
