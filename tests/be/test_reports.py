"""Outcome reports: written with the revision's state change, sent to the WM, deleted on its
ack and kept while it refuses (docs/contracts.md §8)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from fastapi import FastAPI, Request, Response
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
                if self.status < 300:
                    self.reports.extend(body["reports"])
            return Response(status_code=self.status, content=b"{}")


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
