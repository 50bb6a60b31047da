"""The platform steps one by one, on the in-process emulator or httpx.MockTransport, and the
step list run batch by batch on a real database: no servers, no threads, no polling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from be_service.config import CherwellFields
from be_service.models import DONE
from be_service.pipeline.steps import (
    Item,
    Outcome,
    PlatformError,
    Step,
    check_step_list,
    next_position,
)
from be_service.platforms import cherwell
from tests.be.conftest import later, make_ticket
from tests.be.pipeline.conftest import InProcessPipeline, InProcessPlatforms, item

BATCH = 100


def _next(platforms: InProcessPlatforms, after: str, revision: Item) -> str:
    index = [s.name for s in platforms.steps].index(after)
    return next_position(platforms.steps, index, revision)


async def _open_incident(platforms: InProcessPlatforms, ticket: dict[str, Any]) -> dict[str, Any]:
    """Create the ticket's incident through the create step; returns its Cherwell ids."""
    [created] = await platforms.step("create").send([item(ticket, step="create")], request_size=1)
    assert created.ok, created.error
    return dict(created.ids["cherwell"])


async def test_check_finds_an_open_incident_and_the_revision_goes_on_to_the_note(platforms):
    """An open incident for the key is kept as existing; the revision's next step is the note."""
    ticket = make_ticket()
    incident = await _open_incident(platforms, ticket)
    update = item(later(ticket, 2, "update"))
    [outcome] = await platforms.step("check").send([update], request_size=BATCH)
    assert outcome.ok
    assert outcome.ids == {"cherwell": {**incident, "existing": True}}
    assert _next(platforms, "check", item(later(ticket, 2, "update"), **outcome.ids)) == "note"


async def test_check_finds_no_incident_and_the_revision_goes_on_to_the_create(platforms):
    """No open incident for the key: no ids, and the next step is the create."""
    revision = item()
    [outcome] = await platforms.step("check").send([revision], request_size=BATCH)
    assert (outcome.ok, outcome.ids, outcome.response) == (True, {}, "no open incident")
    assert _next(platforms, "check", revision) == "create"


async def test_check_of_a_clear_without_an_incident_completes_it(platforms):
    """A clear whose incident is not open needs nothing more: its next position is done."""
    clear = item(make_ticket(revision=2, action="clear"))
    [outcome] = await platforms.step("check").send([clear], request_size=BATCH)
    assert outcome.response == "no open incident: nothing to clear"
    assert _next(platforms, "check", clear) == DONE


async def test_check_adopts_the_incident_of_a_create_whose_answer_was_lost(platforms):
    """A revision waiting to be created whose incident exists adopts it and orders its work."""
    ticket = make_ticket()
    incident = await _open_incident(platforms, ticket)
    waiting = item(ticket, step="create")
    assert platforms.step("check").takes(waiting)
    [outcome] = await platforms.step("check").send([waiting], request_size=BATCH)
    assert outcome.ids == {"cherwell": incident}
    assert _next(platforms, "check", item(ticket, step="create", **outcome.ids)) == "workorder"


async def test_check_searches_a_whole_batch_with_one_call(platforms):
    """Thirty revisions cost one search request."""
    revisions = [item(revision_id=n) for n in range(30)]
    outcomes = await platforms.step("check").send(revisions, request_size=BATCH)
    assert len(outcomes) == 30
    assert await platforms.requests("getsearchresults") == 1


async def test_a_search_answered_503_fails_the_whole_call_as_retryable(platforms):
    """A 503 is a PlatformError for the whole batch, retryable, with the status kept."""
    await platforms.faults(platform="cherwell", fail_next=1, status=503, endpoint="getsearch")
    with pytest.raises(PlatformError) as raised:
        await platforms.step("check").send([item()], request_size=BATCH)
    assert (raised.value.failure.retryable, raised.value.failure.http_status) == (True, 503)


def _cherwell_answering(save_responses: list[dict[str, Any]]) -> cherwell.CherwellClient:
    """A Cherwell client over MockTransport: login works, every save gets these responses."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 1199})
        return httpx.Response(200, json={"responses": save_responses, "hasError": True})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    credentials = cherwell.CherwellCredentials("http://cherwell/CherwellAPI", "id", "user", "pw")
    return cherwell.CherwellClient(http, credentials, CherwellFields())


async def test_create_fails_only_the_item_the_platform_refused_with_its_message():
    """One item refused inside a 200: that item fails with Cherwell's message, the other is ok."""
    refused = {
        "hasError": True,
        "errorCode": "GENERALFAILURE",
        "errorMessage": "Priority is required",
        "fieldValidationErrors": [],
    }
    accepted = {"hasError": False, "busObRecId": "rec-2", "busObPublicId": "102"}
    step = cherwell.Create(_cherwell_answering([refused, accepted]))
    first, second = await step.send(
        [item(revision_id=1, step="create"), item(revision_id=2, step="create")], request_size=2
    )
    assert (first.ok, first.error, first.http_status) == (
        False,
        "GENERALFAILURE; Priority is required",
        200,
    )
    assert (second.ok, second.ids) == (True, {"cherwell": {"rec_id": "rec-2", "public_id": "102"}})


async def test_create_opens_the_incident_and_the_revision_goes_on_to_the_work_order(platforms):
    """A created incident's ids are the outcome's; the next step is the work order."""
    ticket = make_ticket()
    incident = await _open_incident(platforms, ticket)
    [record] = await platforms.records("incident")
    assert incident == {"rec_id": record["busObRecId"], "public_id": record["busObPublicId"]}
    assert _next(platforms, "create", item(ticket, cherwell=incident)) == "workorder"


async def test_work_order_is_upserted_then_its_number_read_back(platforms):
    """One upsert and one query give each revision its work order's id and number."""
    ticket = make_ticket()
    incident = await _open_incident(platforms, ticket)
    revision = item(ticket, step="workorder", cherwell=incident)
    [outcome] = await platforms.step("workorder").send([revision], request_size=BATCH)
    [order] = await platforms.records("workorder")
    assert outcome.ids == {"sfyc": {"id": order["Id"], "number": order["WorkOrderNumber"]}}
    assert order["External_Key__c"] == f"{ticket['dedup_key']}#{incident['public_id']}"
    assert (await platforms.requests("composite"), await platforms.requests("query")) == (1, 1)


async def test_link_needs_the_work_order_number(platforms):
    """Without sfyc.number the link is not wanted, and a list with it first is refused."""
    link = platforms.step("link")
    opened = {"rec_id": "r", "public_id": "1"}
    assert not link.wants(item(step="link", cherwell=opened))
    assert link.wants(item(step="link", cherwell=opened, sfyc={"id": "s", "number": "WO-1"}))
    reordered = [s for s in platforms.steps if s.name != "workorder"]
    with pytest.raises(ValueError, match="link"):
        check_step_list(reordered)


async def test_link_writes_the_number_on_the_incident(platforms):
    """The work-order number lands in the incident's TpcWorkOrderNumber."""
    ticket = make_ticket()
    incident = await _open_incident(platforms, ticket)
    numbered = item(ticket, step="link", cherwell=incident, sfyc={"id": "s", "number": "WO-7"})
    [outcome] = await platforms.step("link").send([numbered], request_size=BATCH)
    [record] = await platforms.records("incident")
    assert outcome.ok and record["TpcWorkOrderNumber"] == "WO-7"


async def test_note_is_added_to_the_incident_found_open(platforms):
    """The note is a Journal on the incident, headed by the action and revision."""
    ticket = make_ticket()
    incident = await _open_incident(platforms, ticket)
    update = item(later(ticket, 2, "update"), step="note", cherwell={**incident, "existing": True})
    [outcome] = await platforms.step("note").send([update], request_size=BATCH)
    [note] = await platforms.records("journal")
    assert outcome.ok and note["ParentRecID"] == incident["rec_id"]
    assert note["Details"].startswith("[update r2]")


async def test_an_update_that_found_its_incident_open_orders_no_work(platforms):
    """After an update's note nothing is left: no work order and no link."""
    existing = {"rec_id": "r", "public_id": "1", "existing": True}
    update = item(make_ticket(revision=2, action="update"), step="note", cherwell=existing)
    assert _next(platforms, "note", update) == DONE


async def test_an_open_that_found_its_incident_open_makes_sure_its_work_order_exists(platforms):
    """An `open` sent again after a failover (the first BE died between the create and the
    work order) finds its incident open: after the note, it orders the missing work once."""
    ticket = make_ticket()
    incident = await _open_incident(platforms, ticket)
    existing = {**incident, "existing": True}
    assert _next(platforms, "note", item(ticket, step="note", cherwell=existing)) == "workorder"
    waiting = item(ticket, step="workorder", cherwell=existing)
    [first] = await platforms.step("workorder").send([waiting], request_size=BATCH)
    [second] = await platforms.step("workorder").send([waiting], request_size=BATCH)
    [order] = await platforms.records("workorder")
    assert (
        first.ids == second.ids == {"sfyc": {"id": order["Id"], "number": order["WorkOrderNumber"]}}
    )
    assert second.response == f"work order {order['WorkOrderNumber']} exists"
    # The second found it by its number query and upserted nothing.
    assert await platforms.requests("composite") == 1
    numbered = item(ticket, step="link", cherwell=existing, **second.ids)
    assert platforms.step("link").wants(numbered)


async def test_a_new_ticket_goes_through_every_step_in_one_batch(pipeline: InProcessPipeline):
    """check, create, work order, link: one batch, one call each (plus the number query)."""
    ticket = make_ticket()
    await pipeline.intake(ticket)
    assert await pipeline.drain() == 1
    [revision] = (await pipeline.ticket(ticket["ticket_id"])).revisions
    assert [a.operation for a in revision.attempts] == ["check", "create", "workorder", "link"]
    assert revision.status == "Completed"
    platforms = pipeline.platforms
    counts = [await platforms.requests(e) for e in ("search", "savebusiness", "composite", "query")]
    assert counts == [1, 2, 1, 1]


async def test_a_failed_work_order_resumes_at_the_work_order_without_searching(pipeline):
    """After a refused upsert and a retry, the work order is sent again; the incident is
    never searched for again (it may be resolved by then, and a create would duplicate it)."""
    platforms = pipeline.platforms
    await platforms.faults(platform="sfyc", fail_next=1, status=400, endpoint="composite")
    ticket = make_ticket()
    await pipeline.intake(ticket)
    await pipeline.drain()
    [failed] = (await pipeline.ticket(ticket["ticket_id"])).revisions
    assert (failed.status, failed.step) == ("Error", "workorder")
    await pipeline.retry(ticket["ticket_id"])
    await pipeline.drain()
    [revision] = (await pipeline.ticket(ticket["ticket_id"])).revisions
    assert revision.status == "Completed"
    assert await platforms.requests("getsearchresults") == 1
    assert len(await platforms.records("incident")) == 1


async def test_a_revision_waiting_at_a_step_the_list_lacks_ends_in_error(pipeline):
    """A step name this BE does not run (a platform removed) is an Error, not an endless claim."""
    ticket = make_ticket()
    await pipeline.intake(ticket)
    async with pipeline.sessionmaker() as session, session.begin():
        await (await session.connection()).execute(
            text("UPDATE ticket_revision SET step = 'retired'")
        )
    await pipeline.drain()
    [revision] = (await pipeline.ticket(ticket["ticket_id"])).revisions
    assert (revision.status, revision.step) == ("Error", "retired")
    assert "no such step" in (revision.last_error or "")


class _NoOp(Step):
    platform = "test"

    async def send(self, items: Sequence[Item], *, request_size: int) -> list[Outcome]:
        return []


def _renamed(name: str, also_takes_from: tuple[str, ...] = ()) -> Step:
    """A stand-in step with any name, to build broken lists."""
    attributes = {"name": name, "also_takes_from": also_takes_from}
    step: Step = type(f"Step_{name}", (_NoOp,), attributes)()
    return step


@pytest.mark.parametrize(
    ("case", "edit", "problem"),
    [
        ("not starting at check", lambda steps: steps[1:], "must start with"),
        ("a name twice", lambda steps: [*steps, _renamed("note")], "unique"),
        ("a name over 16 characters", lambda steps: [*steps, _renamed("a" * 17)], "at most"),
        (
            "taking from an earlier step",
            lambda steps: [*steps, _renamed("late", ("check",))],
            "not later",
        ),
    ],
)
async def test_a_step_list_no_revision_could_get_through_is_refused(platforms, case, edit, problem):
    """The list is checked when the sender is built, not when a revision gets stuck."""
    with pytest.raises(ValueError, match=problem):
        check_step_list(edit(list(platforms.steps)))
