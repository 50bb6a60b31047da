"""Intake: tickets recorded as Received, all or nothing, idempotent, behind the intake token."""

from __future__ import annotations

from tests.be.conftest import ADMIN_TOKEN, INTAKE_TOKEN, make_ticket, reject_commits


def test_intake_records_every_ticket_as_received(make_be):
    """Accepted tickets are listed as Received while processing is off."""
    be = make_be(processing_enabled=False)
    response = be.intake([make_ticket() for _ in range(3)])
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 3, "duplicates": 0}
    assert be.counts() == {"Received": 3, "Completed": 0, "Error": 0, "Moved": 0}


def test_intake_is_idempotent_by_ticket_id_and_revision(make_be):
    """The same batch sent twice is stored once and reported as duplicates."""
    be = make_be(processing_enabled=False)
    tickets = [make_ticket() for _ in range(2)]
    be.intake(tickets)
    again = be.intake([*tickets, make_ticket()])
    assert again.json() == {"accepted": 1, "duplicates": 2}
    assert be.counts()["Received"] == 3


def test_intake_keeps_extra_fields_of_the_ticket(make_be):
    """Fields beyond the contract are stored with the ticket and shown in its detail."""
    be = make_be(processing_enabled=False)
    ticket = make_ticket(aggregator_ref="agg-7")
    be.intake([ticket])
    assert be.ticket(ticket["ticket_id"])["revisions"][0]["ticket"]["aggregator_ref"] == "agg-7"


def test_intake_rejects_a_bad_ticket_naming_the_field_and_stores_nothing(make_be):
    """One invalid ticket fails the whole batch with a 422 that names its field."""
    be = make_be(processing_enabled=False)
    bad = make_ticket(revision=0)
    response = be.intake([make_ticket(), bad])
    assert response.status_code == 422
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert fields == ["tickets[1].revision"]
    assert be.counts()["Received"] == 0


def test_intake_accepts_a_kind_and_category_it_has_never_seen(make_be):
    """A newer WM's kind (ds-snr, category "Nueva") is stored, not refused with a 422."""
    be = make_be(processing_enabled=False)
    ticket = make_ticket(kind="ds-snr", category="Nueva")
    response = be.intake([ticket])
    assert response.status_code == 200, response.text
    [revision] = be.ticket(ticket["ticket_id"])["revisions"]
    assert (revision["kind"], revision["category"]) == ("ds-snr", "Nueva")


def test_intake_stores_a_kind_of_the_contracts_maximum_length(make_be):
    """A 64-character kind (the contract's bound) fits the BE's column."""
    be = make_be(processing_enabled=False)
    ticket = make_ticket(kind="k" * 64)
    assert be.intake([ticket]).status_code == 200
    assert be.ticket(ticket["ticket_id"])["revisions"][0]["kind"] == "k" * 64


def test_intake_rejects_a_category_over_the_contracts_bound(make_be):
    """Kinds and categories are open but bounded: 65 characters is a 422 on that field."""
    be = make_be(processing_enabled=False)
    response = be.intake([make_ticket(category="c" * 65)])
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "tickets[0].category"
    assert be.counts()["Received"] == 0


def test_intake_needs_the_intake_token(make_be):
    """No token is 401 and the admin token is 403 on intake."""
    be = make_be(processing_enabled=False)
    body = {"tickets": [make_ticket()]}
    assert (
        be.client.post("/api/v1/tickets", json=body, headers={"Authorization": ""}).status_code
        == 401
    )
    admin = be.client.post(
        "/api/v1/tickets", json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert admin.status_code == 403


def test_operator_endpoints_need_the_admin_token(make_be):
    """The intake token does not open the operator API."""
    be = make_be(processing_enabled=False)
    response = be.client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {INTAKE_TOKEN}"})
    assert response.status_code == 403


def test_health_probes_are_open(make_be):
    """/healthz and /readyz answer without a token once the database is migrated."""
    be = make_be(processing_enabled=False)
    headers = {"Authorization": ""}
    assert be.client.get("/healthz", headers=headers).status_code == 200
    assert be.client.get("/readyz", headers=headers).json() == {"status": "ready"}


def test_intake_whose_commit_fails_is_not_acknowledged(make_be, be_database_url):
    """When the intake's transaction cannot commit, the WM gets an error, never a 2xx."""
    be = make_be(processing_enabled=False)
    reject_commits(be_database_url, "ticket_revision")
    response = be.intake([make_ticket()])
    assert response.status_code == 503
    assert be.counts()["Received"] == 0
