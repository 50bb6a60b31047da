"""SFyC (Salesforce-style) emulator over real HTTP: OAuth, WorkOrder upsert, SOQL, reads.

These pin the behaviour the BE's SFyC adapter relies on (CONTEXT.md §4, contracts §3).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import SecretStr

from emulators.app import create_app, create_sfyc_app
from emulators.config import EmulatorSettings
from emulators.sfyc_store import id18
from tests.emulators.conftest import QUERY, UPSERT, Emulator, upsert, work_order

TOKEN = "/services/oauth2/token"
INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def query(emu: Emulator, soql: str, path: str = QUERY) -> dict[str, Any]:
    response = emu.client.get(path, params={"q": soql})
    assert response.status_code == 200, response.text
    return response.json()


def test_client_credentials_token_has_the_salesforce_shape(emu: Emulator) -> None:
    """The token has instance_url (this server), Bearer type, issued_at, id and signature."""
    form = {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "s"}
    token = emu.client.post(TOKEN, data=form).json()
    assert token["instance_url"] == str(emu.client.base_url).rstrip("/")
    assert token["token_type"] == "Bearer"
    assert token["issued_at"].isdigit()
    assert token["id"].startswith(token["instance_url"] + "/id/00D")
    assert token["signature"] and token["access_token"]


def test_password_grant_is_accepted(emu: Emulator) -> None:
    """The username-password flow also yields a session."""
    form = {
        "grant_type": "password",
        "client_id": "c",
        "client_secret": "s",
        "username": "u",
        "password": "p",
    }
    assert emu.client.post(TOKEN, data=form).status_code == 200


def test_bad_credentials_are_invalid_grant(start_app) -> None:
    """With EMULATOR_SFYC_CLIENT_SECRET set, a wrong secret gets 400 invalid_grant."""
    emu = start_app(create_sfyc_app(EmulatorSettings(sfyc_client_secret=SecretStr("ok"))))
    form = {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "nope"}
    response = emu.client.post(TOKEN, data=form)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")
    form["client_secret"] = "ok"
    assert emu.client.post(TOKEN, data=form).status_code == 200


def test_api_call_without_session_is_invalid_session(emu: Emulator) -> None:
    """No or unknown bearer token: 401 INVALID_SESSION_ID list."""
    response = emu.client.get(QUERY, params={"q": "SELECT Id FROM WorkOrder"})
    assert (response.status_code, response.json()) == (401, INVALID_SESSION)


def test_session_expires_after_inactivity(emu: Emulator) -> None:
    """A session unused for the session timeout gets 401."""
    start = emu.state.clock()
    emu.state.clock = lambda: start
    emu.sfyc()
    emu.state.clock = lambda: start + 7200
    assert emu.client.get(QUERY, params={"q": "SELECT Id FROM WorkOrder"}).status_code == 401


def test_upsert_creates_then_updates_by_external_id(emu: Emulator) -> None:
    """First upsert of a key creates (created: true), the second updates the same record."""
    emu.sfyc()
    [created] = upsert(emu, work_order("k#100001", Priority="High"))
    [updated] = upsert(emu, work_order("k#100001", Priority="Low"))
    assert (created["success"], created["created"], created["errors"]) == (True, True, [])
    assert (updated["id"], updated["created"]) == (created["id"], False)
    [record] = emu.client.get("/_emulator/records/workorder").json()
    assert record["Priority"] == "Low"


def test_ids_and_numbers_look_like_salesforce(emu: Emulator) -> None:
    """Ids are 18 chars with the 0WO prefix and a valid checksum; numbers are 8 digits."""
    emu.sfyc()
    ids = [r["id"] for r in upsert(emu, work_order("a"), work_order("b"))]
    assert all(re.fullmatch(r"0WO[0-9A-Za-z]{15}", i) and id18(i[:15]) == i for i in ids)
    numbers = [r["WorkOrderNumber"] for r in emu.client.get("/_emulator/records/workorder").json()]
    assert numbers == ["00000001", "00000002"]


def test_unknown_field_fails_only_its_record(emu: Emulator) -> None:
    """A non-WorkOrder field is a per-record INVALID_FIELD; other records succeed."""
    emu.sfyc()
    good, bad = upsert(emu, work_order("a", Custom__c="ok"), work_order("b", Bogus="x"))
    assert good["success"]
    assert bad["success"] is False
    assert bad["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert bad["errors"][0]["fields"] == ["Bogus"]


def test_bad_picklist_value_fails_the_record(emu: Emulator) -> None:
    """Priority outside the picklist is INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST."""
    emu.sfyc()
    [result] = upsert(emu, work_order("a", Priority="Urgent"))
    assert result["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_all_or_none_rolls_back_every_record_when_one_fails(emu: Emulator) -> None:
    """allOrNone=true: one failure leaves nothing stored; valid records report the rollback."""
    emu.sfyc()
    good, bad = upsert(emu, work_order("a"), work_order("b", Bogus="x"), all_or_none=True)
    assert good["success"] is False
    assert good["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert bad["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert emu.client.get("/_emulator/records/workorder").json() == []


def test_duplicate_external_ids_in_one_request_fail(emu: Emulator) -> None:
    """The same external id twice in one call fails both records, as Salesforce does."""
    emu.sfyc()
    results = upsert(emu, work_order("dup"), work_order("dup"))
    assert [r["errors"][0]["statusCode"] for r in results] == ["DUPLICATE_EXTERNAL_ID"] * 2


def test_more_than_200_records_is_a_bad_request(emu: Emulator) -> None:
    """201 records: 400 with a Salesforce error list, nothing stored."""
    emu.sfyc()
    body = {"allOrNone": False, "records": [work_order(str(i)) for i in range(201)]}
    response = emu.client.patch(UPSERT, json=body)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert emu.client.get("/_emulator/stats").json()["records"]["workorder"] == 0


def test_unknown_external_id_field_is_not_found(emu: Emulator) -> None:
    """Upserting by a field that is not an external id answers 404 NOT_FOUND."""
    emu.sfyc()
    path = UPSERT.replace("External_Key__c", "Subject")
    response = emu.client.patch(path, json={"records": [work_order("a")]})
    assert response.status_code == 404
    assert response.json()[0]["errorCode"] == "NOT_FOUND"


def test_query_with_where_equals(emu: Emulator) -> None:
    """WHERE field = '…' selects that work order with the requested fields only."""
    emu.sfyc()
    upsert(emu, work_order("a"), work_order("b"))
    result = query(emu, "SELECT Id, WorkOrderNumber FROM WorkOrder WHERE External_Key__c = 'b'")
    assert (result["totalSize"], result["done"]) == (1, True)
    [row] = result["records"]
    assert set(row) == {"attributes", "Id", "WorkOrderNumber"}
    assert row["WorkOrderNumber"] == "00000002"
    assert row["attributes"] == {
        "type": "WorkOrder",
        "url": f"/services/data/v60.0/sobjects/WorkOrder/{row['Id']}",
    }


def test_query_with_in_list_and_trailing_slash(emu: Emulator) -> None:
    """WHERE field IN ('…', …) works, also on /query/ with a trailing slash."""
    emu.sfyc()
    upsert(emu, work_order("a"), work_order("b"), work_order("c"))
    soql = "select External_Key__c from workorder where External_Key__c in ('a', 'c', 'zz')"
    result = query(emu, soql, path=QUERY + "/")
    assert [r["External_Key__c"] for r in result["records"]] == ["a", "c"]


def test_query_string_literals_may_contain_escaped_quotes(emu: Emulator) -> None:
    """A \\' inside a literal is a quote, not the literal's end."""
    emu.sfyc()
    upsert(emu, work_order("o'brien"))
    result = query(emu, r"SELECT Id FROM WorkOrder WHERE External_Key__c = 'o\'brien'")
    assert result["totalSize"] == 1


def test_malformed_query_is_rejected(emu: Emulator) -> None:
    """Outside the subset: 400 MALFORMED_QUERY list."""
    emu.sfyc()
    response = emu.client.get(
        QUERY, params={"q": "SELECT Id FROM WorkOrder WHERE Subject LIKE 'x%'"}
    )
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_query_of_an_unknown_column_is_invalid_field(emu: Emulator) -> None:
    """Selecting a field WorkOrder does not have answers INVALID_FIELD."""
    emu.sfyc()
    response = emu.client.get(QUERY, params={"q": "SELECT Nope FROM WorkOrder"})
    assert (response.status_code, response.json()[0]["errorCode"]) == (400, "INVALID_FIELD")


def test_get_work_order_by_id(emu: Emulator) -> None:
    """GET sobjects/WorkOrder/{id} returns the record's fields (15-char ids work too)."""
    emu.sfyc()
    [created] = upsert(emu, work_order("a", Cherwell_Incident__c="100001"))
    response = emu.client.get(f"/services/data/v60.0/sobjects/WorkOrder/{created['id'][:15]}")
    assert response.status_code == 200
    body = response.json()
    assert (body["Id"], body["Cherwell_Incident__c"], body["Status"]) == (
        created["id"],
        "100001",
        "New",
    )


def test_get_unknown_work_order_is_not_found(emu: Emulator) -> None:
    """An unknown id answers 404 with the NOT_FOUND list."""
    emu.sfyc()
    response = emu.client.get("/services/data/v60.0/sobjects/WorkOrder/0WO000000000000AAA")
    assert response.status_code == 404
    assert response.json() == [
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    ]


def test_api_answers_carry_the_limit_header(emu: Emulator) -> None:
    """Every REST answer has Sforce-Limit-Info with the calls used so far."""
    emu.sfyc()
    first = emu.client.get(QUERY, params={"q": "SELECT Id FROM WorkOrder"})
    second = emu.client.get(QUERY, params={"q": "SELECT Id FROM WorkOrder"})
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    assert second.headers["Sforce-Limit-Info"] == "api-usage=2/15000"


def test_combined_app_serves_both_platforms(start_app) -> None:
    """create_app mounts Cherwell and SFyC on one port, and /readyz answers 200."""
    emu = start_app(create_app())
    assert emu.client.get("/readyz").status_code == 200
    assert emu.cherwell_login()["token_type"] == "bearer"
    emu.sfyc()
    assert emu.client.get(QUERY, params={"q": "SELECT Id FROM WorkOrder"}).status_code == 200
