"""A third platform is one adapter and one entry in the step list: a test-only audit log that
receives every completed ticket once per revision, with no change to the pipeline's code."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from be_service.pipeline.steps import CallFailure, Item, Outcome, PlatformError, Step, succeeded
from tests.be.conftest import later, make_ticket
from tests.be.pipeline.conftest import InProcessPipeline


@dataclass
class AuditLog:
    """The platform: an HTTP endpoint that appends a batch of entries (not idempotent)."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.fail_next:
            self.fail_next -= 1
            return httpx.Response(503, json={"error": "audit log unavailable"})
        batch = json.loads(request.content)
        start = len(self.entries)
        self.entries.extend(batch)
        return httpx.Response(200, json=[{"entry": n} for n in range(start, len(self.entries))])


class AuditStep(Step):
    """The adapter: one POST per batch of revisions that went through every other step."""

    name = "audit"
    platform = "audit"
    provides = ("entry",)
    repeatable = False  # an append must not be repeated after a crash

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    def wants(self, item: Item) -> bool:
        return True

    async def send(self, items: Sequence[Item], *, request_size: int) -> list[Outcome]:
        body = [
            {
                "ticket_id": str(i.ticket_id),
                "revision": i.revision,
                "action": i.action,
                "incident": i.platform_id("cherwell", "public_id"),
                "work_order": i.platform_id("sfyc", "number"),
            }
            for i in items
        ]
        response = await self.http.post("http://audit/entries", json=body)
        if response.status_code != 200:
            raise PlatformError(CallFailure(response.text, retryable=True, http_status=503))
        return [
            succeeded(self, i, response=None, ids={self.platform: answer})
            for i, answer in zip(items, response.json(), strict=True)
        ]


@pytest.fixture
async def audit(pipeline: InProcessPipeline) -> AsyncIterator[tuple[AuditLog, tuple[Step, ...]]]:
    """The audit log and the BE's step list with the audit step registered last."""
    log = AuditLog()
    async with httpx.AsyncClient(transport=httpx.MockTransport(log.handle)) as http:
        yield log, (*pipeline.platforms.steps, AuditStep(http))


async def test_every_completed_revision_reaches_the_audit_log_once(pipeline, audit):
    """Created, noted, and cleared revisions each make one audit entry with their ids."""
    log, steps = audit
    ticket = make_ticket()
    await pipeline.intake(ticket)
    await pipeline.drain(steps)
    await pipeline.intake(later(ticket, 2, "update"), later(ticket, 3, "clear"))
    await pipeline.drain(steps)
    await pipeline.drain(steps)  # nothing left: no entry is sent twice
    [incident] = await pipeline.platforms.records("incident")
    [order] = await pipeline.platforms.records("workorder")
    assert [(e["revision"], e["action"]) for e in log.entries] == [
        (1, "open"),
        (2, "update"),
        (3, "clear"),
    ]
    assert {e["incident"] for e in log.entries} == {incident["busObPublicId"]}
    assert log.entries[0]["work_order"] == order["WorkOrderNumber"]
    revisions = (await pipeline.ticket(ticket["ticket_id"])).revisions
    assert [r.status for r in revisions] == ["Completed"] * 3
    assert [r.attempts[-1].operation for r in revisions] == ["audit"] * 3


async def test_a_clear_that_needs_no_platform_call_is_still_audited(pipeline, audit):
    """A clear whose incident is not open reaches the audit log with no incident."""
    log, steps = audit
    await pipeline.intake(make_ticket(revision=2, action="clear"))
    await pipeline.drain(steps)
    assert [(e["action"], e["incident"]) for e in log.entries] == [("clear", None)]
    assert await pipeline.platforms.requests("savebusinessobjectbatch") == 0


async def test_an_audit_outage_waits_and_retries_the_audit_alone(pipeline, audit):
    """A 503 from the audit log is an outage, not the ticket's fault: no Error, and the next
    try sends only the audit entry (the incident and the work order are not sent again)."""
    log, steps = audit
    log.fail_next = 1
    ticket = make_ticket()
    await pipeline.intake(ticket)
    await pipeline.drain(steps)
    [revision] = (await pipeline.ticket(ticket["ticket_id"])).revisions
    assert revision.status == "Completed"
    audits = [(a.operation, a.ok) for a in revision.attempts if a.operation == "audit"]
    assert audits == [("audit", False), ("audit", True)]
    assert [e["revision"] for e in log.entries] == [1]
    assert len(await pipeline.platforms.records("incident")) == 1
    assert len(await pipeline.platforms.records("workorder")) == 1
