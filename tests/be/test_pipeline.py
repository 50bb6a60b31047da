"""The processing pipeline against the emulators: create, note, order, batching, on/off."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from be_service.config import CherwellFields
from be_service.pipeline.worker import WorkerWakeups
from tests.be.conftest import make_ticket, wait_until


def test_new_ticket_creates_incident_work_order_and_links_them(make_be, emulator):
    """A new ticket becomes a Cherwell incident, an SFyC work order, and the OT number on it."""
    be = make_be()
    ticket = make_ticket(priority="P1")
    be.intake([ticket])
    be.wait_all(1)
    [incident] = emulator.records("incident")
    [work_order] = emulator.records("workorder")
    revision = be.ticket(ticket["ticket_id"])["revisions"][0]
    assert (incident["TpcCorrelationKey"], incident["Category"], incident["Priority"]) == (
        ticket["dedup_key"],
        "SNR",
        "1",
    )
    assert incident["Status"] == "New"
    assert work_order["External_Key__c"] == f"{ticket['dedup_key']}#{incident['busObPublicId']}"
    assert incident["TpcWorkOrderNumber"] == work_order["WorkOrderNumber"]
    assert (revision["cherwell_rec_id"], revision["cherwell_public_id"]) == (
        incident["busObRecId"],
        incident["busObPublicId"],
    )
    assert (revision["sfyc_id"], revision["sfyc_work_order_number"]) == (
        work_order["Id"],
        work_order["WorkOrderNumber"],
    )


def test_update_of_an_existing_ticket_adds_a_note(make_be, emulator):
    """A later revision of a ticket whose incident is open becomes a Journal note on it."""
    be = make_be()
    opened = make_ticket()
    be.intake([opened])
    be.wait_all(1)
    be.intake(
        [
            make_ticket(
                opened["dedup_key"], ticket_id=opened["ticket_id"], revision=2, action="update"
            )
        ]
    )
    be.wait_all(2)
    [incident] = emulator.records("incident")
    [note] = emulator.records("journal")
    assert note["ParentRecID"] == incident["busObRecId"]
    assert len(emulator.records("workorder")) == 1


def test_open_for_a_key_whose_incident_is_open_adds_a_note(make_be, emulator):
    """A new ticket id for a dedup key with an open incident does not create a second one."""
    be = make_be()
    first = make_ticket()
    be.intake([first])
    be.wait_all(1)
    be.intake([make_ticket(first["dedup_key"])])
    be.wait_all(2)
    assert len(emulator.records("incident")) == 1
    assert len(emulator.records("journal")) == 1


def test_revisions_of_one_key_are_processed_in_order(make_be, emulator):
    """open, update and clear sent together reach Cherwell as one incident and two ordered notes."""
    be = make_be()
    ticket_id, key = str(uuid.uuid4()), f"snr-upstream:MTY01:US-{uuid.uuid4().hex[:6]}"
    be.intake(
        [
            make_ticket(key, ticket_id=ticket_id, revision=3, action="clear"),
            make_ticket(key, ticket_id=ticket_id, revision=1),
            make_ticket(key, ticket_id=ticket_id, revision=2, action="update"),
        ]
    )
    be.wait_all(3)
    assert len(emulator.records("incident")) == 1
    notes = [n["Details"] for n in emulator.records("journal")]
    assert [n.split("]")[0] for n in notes] == ["[update r2", "[clear r3"]


def test_clear_of_a_ticket_that_never_reached_the_platform_makes_no_call(make_be, emulator):
    """After an open that ended in Error before any create, its clear completes with no call."""
    be = make_be(max_retries=0)
    emulator.faults(platform="cherwell", fail_next=1, status=400, endpoint="getsearchresults")
    opened = make_ticket()
    be.intake([opened])
    be.wait_all(1, "Error")
    before = emulator.stats()["requests"]
    be.intake(
        [
            make_ticket(
                opened["dedup_key"], ticket_id=opened["ticket_id"], revision=2, action="clear"
            )
        ]
    )
    be.wait_all(1, "Completed")
    assert emulator.stats()["requests"] == before


def test_clear_without_an_open_incident_completes_without_writing(make_be, emulator):
    """A clear whose incident is not open on Cherwell completes after the search alone."""
    be = make_be()
    be.intake([make_ticket(revision=2, action="clear")])
    be.wait_all(1)
    assert emulator.requests("savebusinessobjectbatch") == 0
    assert emulator.requests("getsearchresults") == 1


def test_every_step_is_sent_in_batches_of_max_tickets_per_request(make_be, emulator):
    """25 new tickets with batch size 10 take 3 searches, 6 saves, 3 upserts and 3 queries."""
    # One worker: concurrent claims may split the 25 into more, smaller batches (each still
    # within the limit), which is right but not what this test counts.
    be = make_be(processing_enabled=False, workers=1)
    be.intake([make_ticket() for _ in range(25)])
    be.patch_settings(max_tickets_per_request=10, processing_enabled=True)
    be.wait_all(25)
    assert emulator.requests("getsearchresults") == 3
    assert emulator.requests("savebusinessobjectbatch") == 6
    assert emulator.requests("composite/sobjects") == 3
    assert emulator.requests("query") == 3


def test_processing_off_keeps_tickets_received_until_switched_on(make_be, emulator):
    """With processing off nothing is sent; switching it on delivers the waiting tickets."""
    be = make_be(processing_enabled=False)
    be.intake([make_ticket() for _ in range(3)])
    # An iteration that ends now may have begun before the intake; one more than there are
    # workers proves an iteration began after it, so the tickets were there to be taken.
    polls = be.worker_polls()
    wait_until(lambda: be.worker_polls() > polls + be.settings.workers, what="workers polled again")
    assert be.counts()["Received"] == 3
    assert emulator.stats()["requests"] == {}
    be.patch_settings(processing_enabled=True)
    be.wait_all(3)
    assert len(emulator.records("incident")) == 3


def test_an_intake_wakes_idle_workers_without_waiting_for_their_poll(make_be, emulator):
    """With a poll interval longer than the wait, only the intake's wake-up can get the
    tickets sent in time (a small intake as one batch); a resume wakes them the same way."""
    # (As many worker tasks as batches in flight: BE_WORKERS_MAX starts one task each.)
    be = make_be(poll_interval_seconds=120, workers=4, workers_max=4)
    # Each worker looks once as it starts; a look still under way when the tickets arrive
    # would claim some of them beside the one the intake woke (two batches, not one).
    wait_until(lambda: be.worker_polls() >= 4, what="the workers' first look")
    be.intake([make_ticket() for _ in range(30)])
    be.wait_all(30, timeout=20)
    assert emulator.requests("getsearchresults") == 1
    be.intake([make_ticket() for _ in range(3)])
    be.wait_all(33, timeout=20)
    be.client.post("/api/v1/processing/pause", params={"actor": "test"}).raise_for_status()
    be.intake([make_ticket() for _ in range(2)])
    be.client.post("/api/v1/processing/resume", params={"actor": "test"}).raise_for_status()
    be.wait_all(35, timeout=20)
    assert len(emulator.records("incident")) == 35


def test_idle_workers_take_turns_to_look():
    """Between wake-ups one idle worker a poll interval claims, not each of them; the
    others learn when the next turn is due."""

    async def turns() -> list[bool]:
        wakeups = WorkerWakeups()
        first, second = wakeups.wait_for_turn(60), wakeups.wait_for_turn(60)
        return [first == 0, 59 < second <= 60, wakeups.wait_for_turn(0) == 0]

    assert asyncio.run(turns()) == [True, True, True]


def test_operator_list_filters_and_paginates(make_be):
    """The list filters by status and dedup key and walks all rows with the cursor."""
    be = make_be(processing_enabled=False)
    tickets = [make_ticket() for _ in range(5)]
    be.intake(tickets)
    seen, cursor = [], None
    while True:
        params = {"limit": 2, "status": "Received"} | ({"cursor": cursor} if cursor else {})
        page = be.client.get("/api/v1/tickets", params=params).json()
        seen += [item["ticket_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(t["ticket_id"] for t in tickets)
    one = be.client.get("/api/v1/tickets", params={"dedup_key": tickets[2]["dedup_key"]}).json()
    assert [item["ticket_id"] for item in one["items"]] == [tickets[2]["ticket_id"]]
    assert one["counts"] == {"Received": 1, "Completed": 0, "Error": 0, "Moved": 0}


def test_operator_list_rejects_an_unknown_status(make_be):
    """A status filter outside Received/Completed/Error is a 422 naming `status`."""
    be = make_be(processing_enabled=False)
    response = be.client.get("/api/v1/tickets", params={"status": "Done"})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "query.status"


def test_unknown_ticket_is_404(make_be):
    """The detail of a ticket this BE never received is a 404."""
    be = make_be(processing_enabled=False)
    assert be.client.get(f"/api/v1/tickets/{uuid.uuid4()}").status_code == 404


def test_a_note_is_recorded_before_the_rest_of_its_batch_is_sent(make_be, emulator):
    """A note's outcome is stored right after the call, so a later crash cannot resend it."""
    be = make_be()
    opened = make_ticket()
    be.intake([opened])
    be.wait_all(1)
    update = make_ticket(
        opened["dedup_key"], ticket_id=opened["ticket_id"], revision=2, action="update"
    )
    new = make_ticket()
    be.intake([update, new])  # one transaction, so one claim takes both
    be.wait_all(3)
    noted = be.ticket(opened["ticket_id"])["revisions"][1]
    attempts = be.ticket(new["ticket_id"])["revisions"][0]["attempts"]
    create = next(a for a in attempts if a["operation"] == "create")
    assert datetime.fromisoformat(noted["completed_at"]) < datetime.fromisoformat(create["at"])


def test_clear_of_a_ticket_first_sent_by_another_be_is_noted(make_be, emulator):
    """A clear whose earlier revisions are not all here is checked on Cherwell, not skipped."""
    be = make_be(max_retries=0)
    ticket_id, key = str(uuid.uuid4()), f"snr-upstream:MTY01:US-{uuid.uuid4().hex[:6]}"
    fields = CherwellFields()
    # Revision 1 went through another BE before a failover: its incident is open.
    emulator.cherwell_save(
        [
            {
                "busObId": fields.incident_busobid,
                "persist": True,
                "fields": [
                    {"dirty": True, "fieldId": field_id, "name": name, "value": value}
                    for field_id, name, value in (
                        (fields.field_status, "Status", "New"),
                        (fields.field_category, "Category", "SNR"),
                        (fields.field_correlation_key, "TpcCorrelationKey", key),
                    )
                ],
            }
        ]
    )
    emulator.faults(platform="cherwell", fail_next=1, status=400, endpoint="getsearchresults")
    be.intake([make_ticket(key, ticket_id=ticket_id, revision=2, action="update")])
    be.wait_all(1, "Error")
    be.intake([make_ticket(key, ticket_id=ticket_id, revision=3, action="clear")])
    be.wait_all(1)
    [incident] = emulator.records("incident")
    [note] = emulator.records("journal")
    assert note["ParentRecID"] == incident["busObRecId"]
    assert note["Details"].startswith("[clear r3")
