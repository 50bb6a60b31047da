"""Retries against the emulators' faults: 503/429 with Retry-After, per-item failures,
Error after max retries and the retry endpoints, token expiry, a lost create answer."""

from __future__ import annotations

import itertools
from datetime import datetime

from fastapi import FastAPI

from be_service.config import CherwellFields
from tests.be.conftest import be_settings, make_ticket, running_be, wait_until
from tests.support.servers import serve_in_thread


def _attempts(be, ticket, operation):
    revision = be.ticket(ticket["ticket_id"])["revisions"][0]
    return [a for a in revision["attempts"] if a["operation"] == operation]


def test_503_with_retry_after_is_retried_after_the_delay(make_be, emulator):
    """Two 503s with Retry-After: 1 are retried no sooner than a second apart, then succeed."""
    be = make_be()
    emulator.faults(
        platform="cherwell",
        fail_next=2,
        status=503,
        retry_after=1,
        endpoint="savebusinessobjectbatch",
    )
    ticket = make_ticket()
    be.intake([ticket])
    be.wait_all(1)
    creates = _attempts(be, ticket, "create")
    assert [(a["ok"], a["http_status"]) for a in creates] == [
        (False, 503),
        (False, 503),
        (True, 200),
    ]
    times = [datetime.fromisoformat(a["at"]) for a in creates]
    assert all(
        (later - earlier).total_seconds() >= 1 for earlier, later in itertools.pairwise(times)
    )


def test_429_is_retried(make_be, emulator):
    """A 429 from SFyC is a failed attempt that is retried until the work order exists."""
    be = make_be()
    emulator.faults(platform="sfyc", fail_next=1, status=429, endpoint="composite")
    ticket = make_ticket()
    be.intake([ticket])
    be.wait_all(1)
    work_orders = _attempts(be, ticket, "workorder")
    assert [(a["ok"], a["http_status"]) for a in work_orders] == [(False, 429), (True, 200)]
    assert len(emulator.records("workorder")) == 1


def test_a_400_is_not_retried(make_be, emulator):
    """A 400 on a whole call ends the ticket in Error at once with the platform's message."""
    be = make_be(max_retries=5)
    emulator.faults(platform="cherwell", fail_next=1, status=400, endpoint="getsearchresults")
    ticket = make_ticket()
    be.intake([ticket])
    be.wait_all(1, "Error")
    revision = be.ticket(ticket["ticket_id"])["revisions"][0]
    assert [a["http_status"] for a in revision["attempts"]] == [400]
    assert "400" in revision["last_error"]


def test_per_item_failures_retry_only_the_failed_items(be_database_url, seeded_emulator):
    """With half the batch items failing validation, only failed items are resent, once each."""
    emulator = seeded_emulator
    emulator.faults(platform="all", item_error_rate=0.5)
    settings = be_settings(be_database_url, emulator, workers=1, max_retries=30)
    tickets = [make_ticket() for _ in range(10)]
    with running_be(settings) as be:
        be.intake(tickets)
        be.wait_all(10)
        creates = [_attempts(be, t, "create") for t in tickets]
    assert any(not a["ok"] for attempts in creates for a in attempts)
    # Each ticket: some failed tries, then exactly one success as its last create attempt.
    assert all([a["ok"] for a in attempts].count(True) == 1 for attempts in creates)
    assert all(attempts[-1]["ok"] for attempts in creates)
    keys = [r["TpcCorrelationKey"] for r in emulator.records("incident")]
    assert sorted(keys) == sorted(t["dedup_key"] for t in tickets)


def test_error_after_max_retries_keeps_the_last_platform_message(make_be, emulator):
    """max_retries=2: the third create refused for the ticket's content ends in Error with
    the platform's validation message."""
    be = make_be(max_retries=2)
    emulator.faults(platform="cherwell", item_error_rate=1, endpoint="savebusinessobjectbatch")
    ticket = make_ticket()
    be.intake([ticket])
    be.wait_all(1, "Error")
    revision = be.ticket(ticket["ticket_id"])["revisions"][0]
    assert [a["ok"] for a in revision["attempts"] if a["operation"] == "create"] == [False] * 3
    assert revision["status"] == "Error"
    assert "FieldValidationFailed" in revision["last_error"]


def test_an_outage_never_spends_the_retries(make_be, emulator):
    """max_retries=0 and every create answered 503: the ticket keeps waiting, never Error."""
    be = make_be(max_retries=0, circuit_failure_threshold=1000)
    emulator.faults(
        platform="cherwell", error_rate=1, status=503, endpoint="savebusinessobjectbatch"
    )
    ticket = make_ticket()
    be.intake([ticket])

    def creates() -> list[dict]:
        revision = be.ticket(ticket["ticket_id"])["revisions"][0]
        return [a for a in revision["attempts"] if a["operation"] == "create"]

    wait_until(lambda: len(creates()) >= 3, what="three failed creates")
    revision = be.ticket(ticket["ticket_id"])["revisions"][0]
    assert revision["status"] == "Received" and "503" in revision["last_error"]
    emulator.client.delete("/_emulator/faults")
    be.wait_all(1)
    assert len(emulator.records("incident")) == 1


def test_retry_endpoint_revives_an_error_ticket_with_fresh_counts(make_be, emulator):
    """After the fault clears, POST …/retry completes the ticket and the history shows it."""
    be = make_be(max_retries=0)
    emulator.faults(platform="cherwell", item_error_rate=1, endpoint="savebusinessobjectbatch")
    ticket = make_ticket()
    be.intake([ticket])
    be.wait_all(1, "Error")
    emulator.client.delete("/_emulator/faults")
    response = be.client.post(f"/api/v1/tickets/{ticket['ticket_id']}/retry")
    assert response.json() == {"retried": 1}
    be.wait_all(1)
    attempts = be.ticket(ticket["ticket_id"])["revisions"][0]["attempts"]
    operations = [(a["operation"], a["retry_round"], a["ok"]) for a in attempts]
    assert ("operator_retry", 1, True) in operations
    assert ("create", 1, True) in operations
    assert len(emulator.records("incident")) == 1


def test_retry_of_a_ticket_without_errors_is_a_conflict(make_be):
    """POST …/retry on a ticket with no Error revision answers 409."""
    be = make_be(processing_enabled=False)
    ticket = make_ticket()
    be.intake([ticket])
    assert be.client.post(f"/api/v1/tickets/{ticket['ticket_id']}/retry").status_code == 409


def test_retry_errors_revives_every_error_ticket(make_be, emulator):
    """POST /tickets/retry-errors sends all Error tickets back; they complete."""
    be = make_be(max_retries=0)
    emulator.faults(platform="sfyc", item_error_rate=1, endpoint="composite")
    be.intake([make_ticket() for _ in range(3)])
    be.wait_all(3, "Error")
    emulator.client.delete("/_emulator/faults")
    assert be.client.post("/api/v1/tickets/retry-errors").json() == {"retried": 3}
    be.wait_all(3)
    assert len(emulator.records("workorder")) == 3
    assert len(emulator.records("incident")) == 3


def test_expired_tokens_are_renewed_once_without_failing_an_attempt(make_be, emulator):
    """After every token expires, both platforms log in again and no attempt fails."""
    be = make_be()
    be.intake([make_ticket()])
    be.wait_all(1)
    emulator.client.post("/_emulator/tokens/expire")
    ticket = make_ticket()
    be.intake([ticket])
    be.wait_all(2)
    assert emulator.requests("CherwellAPI/token") == 2
    assert emulator.requests("oauth2/token") == 2
    assert all(a["ok"] for a in be.ticket(ticket["ticket_id"])["revisions"][0]["attempts"])


def test_lost_create_answer_does_not_duplicate_the_incident(make_be, emulator):
    """A create applied but answered 504 is found by the next search and adopted."""
    be = make_be()
    emulator.faults(platform="cherwell", lose_response_next=1, endpoint="savebusinessobjectbatch")
    ticket = make_ticket()
    be.intake([ticket])
    be.wait_all(1)
    assert len(emulator.records("incident")) == 1
    attempts = be.ticket(ticket["ticket_id"])["revisions"][0]["attempts"]
    steps = [(a["operation"], a["ok"]) for a in attempts]
    assert steps[:3] == [("check", True), ("create", False), ("check", True)]
    assert ("create", True) not in steps
    assert len(emulator.records("workorder")) == 1


def _at(attempt):
    return datetime.fromisoformat(attempt["at"])


def test_retry_after_a_failed_work_order_reuses_the_incident_even_once_resolved(make_be, emulator):
    """A revision whose incident exists goes on from the work order, never searching again."""
    be = make_be()
    emulator.faults(platform="sfyc", fail_next=1, status=400, endpoint="composite")
    ticket = make_ticket()
    be.intake([ticket])
    be.wait_all(1, "Error")
    [incident] = emulator.records("incident")
    fields = CherwellFields()
    emulator.cherwell_save(
        [
            {
                "busObId": fields.incident_busobid,
                "busObRecId": incident["busObRecId"],
                "persist": True,
                "fields": [
                    {
                        "dirty": True,
                        "fieldId": fields.field_status,
                        "name": "Status",
                        "value": "Resolved",
                    }
                ],
            }
        ]
    )
    assert be.client.post(f"/api/v1/tickets/{ticket['ticket_id']}/retry").status_code == 200
    be.wait_all(1)
    assert [i["busObRecId"] for i in emulator.records("incident")] == [incident["busObRecId"]]
    [work_order] = emulator.records("workorder")
    assert work_order["External_Key__c"] == f"{ticket['dedup_key']}#{incident['busObPublicId']}"


def test_ambiguous_create_is_searched_again_only_after_the_minimum_delay(make_be, emulator):
    """After a lost create answer the next search waits BE_AMBIGUOUS_CREATE_DELAY_SECONDS."""
    be = make_be(ambiguous_create_delay_seconds=2)
    emulator.faults(platform="cherwell", lose_response_next=1, endpoint="savebusinessobjectbatch")
    ticket = make_ticket()
    be.intake([ticket])
    be.wait_all(1)
    attempts = be.ticket(ticket["ticket_id"])["revisions"][0]["attempts"]
    lost = next(i for i, a in enumerate(attempts) if a["operation"] == "create")
    assert (attempts[lost]["ok"], attempts[lost + 1]["operation"]) == (False, "check")
    assert (_at(attempts[lost + 1]) - _at(attempts[lost])).total_seconds() >= 2
    assert len(emulator.records("incident")) == 1


def _cherwell_with_malformed_search() -> FastAPI:
    """A Cherwell stand-in whose search answers 200 with a businessObjects item not an object."""
    app = FastAPI()

    @app.post("/CherwellAPI/token")
    async def token() -> dict[str, object]:
        return {"access_token": "t", "token_type": "bearer", "expires_in": 1199}

    @app.post("/CherwellAPI/api/V1/getsearchresults")
    async def search() -> dict[str, object]:
        return {"businessObjects": ["not an object"], "totalRows": 1, "hasMoreRecords": False}

    return app


def test_an_unexpected_error_in_a_step_counts_as_a_failed_attempt(be_database_url, emulator):
    """A malformed platform answer that breaks the adapter ends the ticket in Error, named."""
    with serve_in_thread(_cherwell_with_malformed_search()) as cherwell:
        settings = be_settings(
            be_database_url, emulator, cherwell_url=f"{cherwell.url}/CherwellAPI", max_retries=1
        )
        ticket = make_ticket()
        with running_be(settings) as be:
            be.intake([ticket])
            be.wait_all(1, "Error")
            revision = be.ticket(ticket["ticket_id"])["revisions"][0]
    assert [(a["operation"], a["ok"]) for a in revision["attempts"]] == [("check", False)] * 2
    assert revision["last_error"].startswith("AttributeError: ")


def test_retry_of_a_revision_superseded_by_a_completed_clear_sends_nothing(make_be, emulator):
    """An Error open whose clear already completed is completed by the retry without a call."""
    be = make_be(max_retries=0)
    emulator.faults(platform="cherwell", fail_next=1, status=400, endpoint="getsearchresults")
    opened = make_ticket()
    be.intake([opened])
    be.wait_all(1, "Error")
    clear = make_ticket(
        opened["dedup_key"], ticket_id=opened["ticket_id"], revision=2, action="clear"
    )
    be.intake([clear])
    be.wait_all(1)
    before = emulator.stats()["requests"]
    response = be.client.post(f"/api/v1/tickets/{opened['ticket_id']}/retry")
    assert response.json() == {"retried": 1}
    wait_until(
        lambda: be.ticket(opened["ticket_id"])["revisions"][0]["status"] == "Completed",
        what="the retried open completed",
    )
    assert emulator.records("incident") == []
    assert emulator.stats()["requests"] == before
    last = be.ticket(opened["ticket_id"])["revisions"][0]["attempts"][-1]
    assert (last["operation"], last["retry_round"]) == ("operator_retry", 1)
    assert "superseded by revision 2" in last["response"]


def test_retry_of_an_open_whose_create_landed_finishes_its_work_order(make_be, emulator):
    """An open in Error after its incident was created (its work order refused), noted by a
    later update: the retry still upserts the OT and links it."""
    be = make_be(max_retries=0)
    emulator.faults(platform="sfyc", item_error_rate=1, endpoint="composite")
    opened = make_ticket()
    be.intake([opened])
    be.wait_all(1, "Error")
    emulator.client.delete("/_emulator/faults")
    update = make_ticket(
        opened["dedup_key"], ticket_id=opened["ticket_id"], revision=2, action="update"
    )
    be.intake([update])
    be.wait_all(1)
    assert emulator.records("workorder") == []
    response = be.client.post(f"/api/v1/tickets/{opened['ticket_id']}/retry")
    assert response.json() == {"retried": 1}
    be.wait_all(2)
    [incident] = emulator.records("incident")
    [order] = emulator.records("workorder")
    assert incident["TpcWorkOrderNumber"] == order["WorkOrderNumber"]
