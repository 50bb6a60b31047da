"""Cherwell emulator over real HTTP: tokens, batch saves, searches, reads and journal notes.

These pin the platform behaviour the BE's Cherwell adapter relies on (CONTEXT.md §4).
"""

from __future__ import annotations

import re

import pytest
from pydantic import SecretStr

from emulators.app import create_cherwell_app
from emulators.cherwell_store import INCIDENT_BUS_OB_ID
from emulators.config import EmulatorSettings
from tests.emulators.conftest import (
    CATEGORY,
    CORRELATION,
    DESCRIPTION,
    DETAILS,
    JOURNAL_BUS_OB_ID,
    PARENT_REC_ID,
    PRIORITY,
    SAVE,
    SEARCH,
    STATUS,
    Emulator,
    incident,
    values,
)

GET_BY_PUBLIC = "/CherwellAPI/api/V1/getbusinessobject/busobid/{bo}/publicid/{pid}"
GET_BY_REC = "/CherwellAPI/api/V1/getbusinessobject/busobid/{bo}/busobrecid/{rid}"
DENIED = {"Message": "Authorization has been denied for this request."}


def test_password_grant_returns_the_owin_token_shape(emu: Emulator) -> None:
    """A password grant answers with Cherwell's exact token keys and a 1199 s lifetime."""
    token = emu.cherwell_login()
    assert set(token) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "as:client_id",
        "username",
        ".issued",
        ".expires",
    }
    assert (token["token_type"], token["expires_in"]) == ("bearer", 1199)
    assert (token["as:client_id"], token["username"]) == ("cid", "noc")
    assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT", token[".expires"])


def test_password_grant_without_password_is_invalid_grant(emu: Emulator) -> None:
    """Missing credentials get 400 invalid_grant with a description."""
    form = {"grant_type": "password", "client_id": "cid", "username": "noc", "password": ""}
    response = emu.client.post("/CherwellAPI/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert response.json()["error_description"]


def test_unknown_grant_type_is_unsupported(emu: Emulator) -> None:
    """A grant type other than password/refresh_token gets unsupported_grant_type."""
    response = emu.client.post("/CherwellAPI/token", data={"grant_type": "implicit"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_strict_credentials_reject_a_wrong_password(start_app) -> None:
    """With EMULATOR_CHERWELL_PASSWORD set, another password is refused."""
    settings = EmulatorSettings(cherwell_password=SecretStr("right"), cherwell_username="noc")
    emu = start_app(create_cherwell_app(settings))
    form = {"grant_type": "password", "client_id": "cid", "username": "noc", "password": "wrong"}
    assert emu.client.post("/CherwellAPI/token", data=form).status_code == 400
    assert emu.cherwell_login(password="right")["username"] == "noc"


def test_api_call_without_token_is_denied(emu: Emulator) -> None:
    """No bearer token: 401 with ASP.NET's denial message."""
    response = emu.client.post(SEARCH, json={"busObId": INCIDENT_BUS_OB_ID})
    assert response.status_code == 401
    assert response.json() == DENIED


def test_refresh_rotates_the_pair_and_invalidates_the_old_access_token(emu: Emulator) -> None:
    """A refresh grant issues a new pair; the previous access token then gets 401."""
    first = emu.cherwell_login()
    form = {
        "grant_type": "refresh_token",
        "client_id": "cid",
        "refresh_token": first["refresh_token"],
    }
    second = emu.client.post("/CherwellAPI/token", data=form).json()
    assert second["access_token"] != first["access_token"]
    old = {"Authorization": f"Bearer {first['access_token']}"}
    new = {"Authorization": f"Bearer {second['access_token']}"}
    body = {"busObId": INCIDENT_BUS_OB_ID}
    assert emu.client.post(SEARCH, json=body, headers=old).status_code == 401
    assert emu.client.post(SEARCH, json=body, headers=new).status_code == 200


def test_a_used_refresh_token_cannot_be_used_again(emu: Emulator) -> None:
    """The previous refresh token is invalidated by the refresh."""
    first = emu.cherwell_login()
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    assert emu.client.post("/CherwellAPI/token", data=form).status_code == 200
    again = emu.client.post("/CherwellAPI/token", data=form)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_access_token_expires_after_its_lifetime(emu: Emulator) -> None:
    """Once expires_in seconds have passed the token gets 401."""
    start = emu.state.clock()
    emu.state.clock = lambda: start
    client = emu.cherwell()
    assert client.post(SEARCH, json={"busObId": INCIDENT_BUS_OB_ID}).status_code == 200
    emu.state.clock = lambda: start + 1199
    response = client.post(SEARCH, json={"busObId": INCIDENT_BUS_OB_ID})
    assert (response.status_code, response.json()) == (401, DENIED)


def test_create_assigns_ids_status_and_creation_time(emu: Emulator) -> None:
    """Creates get 42-hex RecIds, incrementing numeric public ids, Status New, CreatedDateTime."""
    emu.cherwell()
    result = emu.save(incident(**{CORRELATION: "k1"}), incident(**{CORRELATION: "k2"}))
    first, second = result["responses"]
    assert re.fullmatch(r"[0-9a-f]{42}", first["busObRecId"])
    assert (first["busObPublicId"], second["busObPublicId"]) == ("100001", "100002")
    assert not result["hasError"] and not first["hasError"]
    stored = values(
        emu.client.get(GET_BY_REC.format(bo=INCIDENT_BUS_OB_ID, rid=first["busObRecId"])).json()
    )
    assert stored["Status"] == "New"
    assert stored["IncidentID"] == "100001"
    assert re.fullmatch(
        r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2} [AP]M", stored["CreatedDateTime"]
    )


def test_update_by_rec_id_applies_only_dirty_fields(emu: Emulator) -> None:
    """Non-dirty fields of an update are ignored; dirty ones are written."""
    emu.cherwell()
    created = emu.save(incident(**{DESCRIPTION: "before", PRIORITY: "3"}))["responses"][0]
    update = {
        "busObId": INCIDENT_BUS_OB_ID,
        "busObRecId": created["busObRecId"],
        "fields": [
            {"dirty": True, "fieldId": STATUS, "value": "Assigned"},
            {"dirty": False, "fieldId": DESCRIPTION, "value": "ignored"},
        ],
    }
    assert not emu.save(update)["responses"][0]["hasError"]
    [record] = emu.client.get("/_emulator/records/incident").json()
    assert (record["Status"], record["Description"], record["Priority"]) == (
        "Assigned",
        "before",
        "3",
    )


def test_update_by_public_id(emu: Emulator) -> None:
    """An update may address the incident by its public id instead of the RecID."""
    emu.cherwell()
    created = emu.save(incident(**{DESCRIPTION: "x"}))["responses"][0]
    update = {"busObId": INCIDENT_BUS_OB_ID, "busObPublicId": created["busObPublicId"]}
    update["fields"] = [{"dirty": True, "fieldId": DESCRIPTION, "value": "y"}]
    answer = emu.save(update)["responses"][0]
    assert answer["busObRecId"] == created["busObRecId"]
    assert emu.client.get("/_emulator/records/incident").json()[0]["Description"] == "y"


def test_update_of_an_unknown_record_fails_that_item(emu: Emulator) -> None:
    """A RecID that does not exist is a per-item RecordNotFound error."""
    emu.cherwell()
    update = {"busObId": INCIDENT_BUS_OB_ID, "busObRecId": "0" * 42, "fields": []}
    answer = emu.save(update)["responses"][0]
    assert (answer["hasError"], answer["errorCode"]) == (True, "RecordNotFound")


def test_unknown_field_fails_only_its_item(emu: Emulator) -> None:
    """An unknown field id gives that item fieldValidationErrors; the others are saved."""
    emu.cherwell()
    bad = incident(**{"deadbeefdeadbeefdeadbeefdeadbeef": "x"})
    result = emu.save(incident(**{CORRELATION: "a"}), bad, incident(**{CORRELATION: "b"}))
    ok1, failed, ok2 = result["responses"]
    assert failed["hasError"] and failed["busObRecId"] is None
    assert failed["fieldValidationErrors"][0]["fieldId"] == "deadbeefdeadbeefdeadbeefdeadbeef"
    assert not ok1["hasError"] and not ok2["hasError"]
    assert emu.client.get("/_emulator/stats").json()["records"]["incident"] == 2


def test_invalid_status_value_is_a_field_validation_error(emu: Emulator) -> None:
    """Values outside a field's allowed list are rejected per item."""
    emu.cherwell()
    answer = emu.save(incident(**{STATUS: "Bogus"}))["responses"][0]
    assert answer["hasError"]
    assert answer["fieldValidationErrors"][0]["fieldId"] == STATUS


def test_read_only_field_cannot_be_written(emu: Emulator) -> None:
    """IncidentID is assigned by the platform; writing it is a validation error."""
    emu.cherwell()
    answer = emu.save(incident(**{"6ae282c55e8e4266ae66ffc070c17fa3": "7"}))["responses"][0]
    assert answer["fieldValidationErrors"][0]["errorCode"] == "ReadOnlyField"


def test_stop_on_error_stops_after_the_first_failure_without_rollback(emu: Emulator) -> None:
    """stopOnError: items after a failure are not processed; earlier ones stay saved."""
    emu.cherwell()
    bad = incident(**{STATUS: "Bogus"})
    result = emu.save(
        incident(**{CORRELATION: "a"}), bad, incident(**{CORRELATION: "c"}), stop_on_error=True
    )
    assert [r["hasError"] for r in result["responses"]] == [False, True]
    assert result["hasError"]
    keys = [r["TpcCorrelationKey"] for r in emu.client.get("/_emulator/records/incident").json()]
    assert keys == ["a"]


def test_keys_are_case_insensitive_and_booleans_may_be_strings(emu: Emulator) -> None:
    """busObID/fieldID/Dirty:"true" are understood, like Json.NET binding."""
    emu.cherwell()
    body = {
        "SaveRequests": [
            {
                "busObID": INCIDENT_BUS_OB_ID,
                "Persist": "true",
                "Fields": [{"Dirty": "true", "fieldID": CORRELATION, "Value": "ci"}],
            }
        ],
        "StopOnError": "false",
    }
    answer = emu.client.post(SAVE, json=body).json()["responses"][0]
    assert not answer["hasError"]
    assert emu.client.get("/_emulator/records/incident").json()[0]["TpcCorrelationKey"] == "ci"


def test_numbers_and_booleans_bind_as_text_and_a_container_is_refused_by_field(
    emu: Emulator,
) -> None:
    """Json.NET binds 42, 1.5 and true to a string property as "42", "1.5" and "True"; an
    object or array there fails that item alone, its message naming the field."""
    emu.cherwell()
    texts: dict[str, object] = {"n": 42, "f": 1.5, "b": True, "s": "plain"}
    result = emu.save(
        *(incident(**{CORRELATION: key, DESCRIPTION: value}) for key, value in texts.items()),
        incident(**{CORRELATION: "bad", DESCRIPTION: ["x"]}),
    )
    answers = result["responses"]
    assert [a["hasError"] for a in answers] == [False] * 4 + [True]
    assert answers[4]["errorMessage"] == "fields.1.value: Input should be a valid string"
    stored = {
        r["TpcCorrelationKey"]: r["Description"]
        for r in emu.client.get("/_emulator/records/incident").json()
    }
    assert stored == {"n": "42", "f": "1.5", "b": "True", "s": "plain"}


def test_fields_may_be_addressed_by_full_id_or_by_name(emu: Emulator) -> None:
    """`BO:…,FI:…` full ids and (without an id) field names resolve to the same fields."""
    emu.cherwell()
    request = {
        "busObId": INCIDENT_BUS_OB_ID,
        "fields": [
            {"dirty": True, "fieldId": f"BO:{INCIDENT_BUS_OB_ID},FI:{DESCRIPTION}", "value": "d"},
            {"dirty": True, "name": "category", "value": "SNR"},
        ],
    }
    assert not emu.save(request)["responses"][0]["hasError"]
    [record] = emu.client.get("/_emulator/records/incident").json()
    assert (record["Description"], record["Category"]) == ("d", "SNR")


def test_persist_false_does_not_store(emu: Emulator) -> None:
    """persist=false only caches: the answer has a cacheKey and nothing is stored."""
    emu.cherwell()
    request = {**incident(**{DESCRIPTION: "x"}), "persist": False}
    answer = emu.save(request)["responses"][0]
    assert answer["cacheKey"] and not answer["hasError"]
    assert emu.client.get("/_emulator/records/incident").json() == []


def _seed(emu: Emulator) -> None:
    emu.cherwell()
    emu.save(
        incident(**{CORRELATION: "snr:a", STATUS: "New", CATEGORY: "SNR", PRIORITY: "1"}),
        incident(**{CORRELATION: "snr:b", STATUS: "Assigned", CATEGORY: "SNR", PRIORITY: "2"}),
        incident(
            **{CORRELATION: "us:c", STATUS: "Closed", CATEGORY: "Falla de Linea", PRIORITY: "3"}
        ),
        incident(**{CORRELATION: "ds:d", STATUS: "New", CATEGORY: "Falla de Linea", PRIORITY: "4"}),
    )


def _keys(result: dict) -> list[str]:
    return [values(o)["TpcCorrelationKey"] for o in result["businessObjects"]]


def test_filters_on_the_same_field_are_ored(emu: Emulator) -> None:
    """Two Status filters return incidents with either status."""
    _seed(emu)
    filters = [
        {"fieldId": STATUS, "operator": "eq", "value": "Assigned"},
        {"fieldId": STATUS, "operator": "eq", "value": "Closed"},
    ]
    assert _keys(emu.search(filters=filters)) == ["snr:b", "us:c"]


def test_filters_on_different_fields_are_anded(emu: Emulator) -> None:
    """A Status OR-group and a Category filter must both hold."""
    _seed(emu)
    filters = [
        {"fieldId": STATUS, "operator": "eq", "value": "New"},
        {"fieldId": STATUS, "operator": "eq", "value": "Assigned"},
        {"fieldId": CATEGORY, "operator": "eq", "value": "Falla de Linea"},
    ]
    assert _keys(emu.search(filters=filters)) == ["ds:d"]


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("eq", "SNR:A", ["snr:a"]),
        ("contains", ":c", ["us:c"]),
        ("startswith", "snr", ["snr:a", "snr:b"]),
        ("gt", "snr:a", ["snr:b", "us:c"]),
        ("lt", "ds:e", ["ds:d"]),
    ],
)
def test_each_search_operator(
    emu: Emulator, operator: str, value: str, expected: list[str]
) -> None:
    """eq, contains, startswith, gt and lt select as documented (case-insensitive text)."""
    _seed(emu)
    filters = [{"fieldId": CORRELATION, "operator": operator, "value": value}]
    assert _keys(emu.search(filters=filters)) == expected


def test_gt_and_lt_compare_numbers_numerically(emu: Emulator) -> None:
    """Priority "10"-style numbers are compared as numbers, not text."""
    _seed(emu)
    filters = [{"fieldId": PRIORITY, "operator": "gt", "value": "2"}]
    assert _keys(emu.search(filters=filters)) == ["us:c", "ds:d"]


def test_paging_reports_total_and_more_records(emu: Emulator) -> None:
    """pageNumber counts from 1; totalRows and hasMoreRecords describe the whole result."""
    _seed(emu)
    first = emu.search(pageNumber=1, pageSize=3)
    last = emu.search(pageNumber=2, pageSize=3)
    assert (first["totalRows"], first["hasMoreRecords"], len(first["businessObjects"])) == (
        4,
        True,
        3,
    )
    assert (last["hasMoreRecords"], _keys(last)) == (False, ["ds:d"])


def test_search_returns_only_the_requested_fields(emu: Emulator) -> None:
    """`fields` limits each ReadResponse's fields, with ids and names."""
    _seed(emu)
    result = emu.search(fields=[CORRELATION], pageSize=1)
    [obj] = result["businessObjects"]
    assert [(f["fieldId"], f["name"]) for f in obj["fields"]] == [
        (CORRELATION, "TpcCorrelationKey")
    ]
    assert obj["busObPublicId"] == "100001"


def test_unknown_operator_is_a_bad_request(emu: Emulator) -> None:
    """Operators outside eq/gt/lt/contains/startswith are rejected with the envelope."""
    emu.cherwell()
    body = {
        "busObId": INCIDENT_BUS_OB_ID,
        "filters": [{"fieldId": STATUS, "operator": "ne", "value": "New"}],
    }
    response = emu.client.post(SEARCH, json=body)
    assert response.status_code == 400
    assert response.json()["hasError"] is True


def test_get_business_object_by_public_id(emu: Emulator) -> None:
    """getbusinessobject by public id returns the ReadResponse with all fields."""
    _seed(emu)
    response = emu.client.get(GET_BY_PUBLIC.format(bo=INCIDENT_BUS_OB_ID, pid="100002"))
    assert response.status_code == 200
    assert values(response.json())["TpcCorrelationKey"] == "snr:b"


def test_get_business_object_by_rec_id(emu: Emulator) -> None:
    """getbusinessobject by RecID finds the record the save answered with."""
    emu.cherwell()
    rec_id = emu.save(incident(**{CORRELATION: "r"}))["responses"][0]["busObRecId"]
    response = emu.client.get(GET_BY_REC.format(bo=INCIDENT_BUS_OB_ID, rid=rec_id))
    assert response.json()["busObRecId"] == rec_id
    assert values(response.json())["TpcCorrelationKey"] == "r"


def test_get_unknown_business_object_is_not_found(emu: Emulator) -> None:
    """An unknown public id answers 404 with the error envelope."""
    emu.cherwell()
    response = emu.client.get(GET_BY_PUBLIC.format(bo=INCIDENT_BUS_OB_ID, pid="999999"))
    assert response.status_code == 404
    assert response.json()["errorCode"] == "RecordNotFound"


def _journal(parent: str, text: str) -> dict:
    return {
        "busObId": JOURNAL_BUS_OB_ID,
        "fields": [
            {"dirty": True, "fieldId": PARENT_REC_ID, "value": parent},
            {"dirty": True, "name": "ParentTypeID", "value": INCIDENT_BUS_OB_ID},
            {"dirty": True, "fieldId": DETAILS, "value": text},
        ],
    }


def test_journal_note_is_linked_to_its_incident(emu: Emulator) -> None:
    """A JournalNote saved with an existing ParentRecID is stored with that link."""
    emu.cherwell()
    rec_id = emu.save(incident(**{CORRELATION: "j"}))["responses"][0]["busObRecId"]
    answer = emu.save(_journal(rec_id, "sigue la falla"))["responses"][0]
    assert not answer["hasError"]
    [note] = emu.client.get("/_emulator/records/journal").json()
    assert (note["ParentRecID"], note["Details"]) == (rec_id, "sigue la falla")
    assert note["busObRecId"] == answer["busObRecId"]


def test_journal_note_with_unknown_parent_fails_per_item(emu: Emulator) -> None:
    """A note whose ParentRecID is no incident fails; its batch neighbours are saved."""
    emu.cherwell()
    rec_id = emu.save(incident(**{CORRELATION: "j"}))["responses"][0]["busObRecId"]
    result = emu.save(_journal("f" * 42, "lost"), _journal(rec_id, "kept"))
    bad, good = result["responses"]
    assert bad["hasError"] and bad["fieldValidationErrors"][0]["fieldId"] == PARENT_REC_ID
    assert not good["hasError"]
    assert emu.client.get("/_emulator/stats").json()["records"]["journal"] == 1


def test_repeated_search_sees_records_saved_in_between(emu: Emulator) -> None:
    """The same search after another save includes the new incident (no stale result)."""
    _seed(emu)
    filters = [{"fieldId": CATEGORY, "operator": "eq", "value": "SNR"}]
    assert emu.search(filters=filters)["totalRows"] == 2
    emu.save(incident(**{CORRELATION: "snr:e", CATEGORY: "SNR"}))
    assert _keys(emu.search(filters=filters)) == ["snr:a", "snr:b", "snr:e"]


def test_repeated_search_sees_updates_in_between(emu: Emulator) -> None:
    """An update that moves an incident out of a filter removes it from the next search."""
    _seed(emu)
    filters = [{"fieldId": STATUS, "operator": "eq", "value": "New"}]
    first = emu.search(filters=filters)
    rec_id = first["businessObjects"][0]["busObRecId"]
    update = {"busObId": INCIDENT_BUS_OB_ID, "busObRecId": rec_id}
    update["fields"] = [{"dirty": True, "fieldId": STATUS, "value": "Resolved"}]
    emu.save(update)
    assert _keys(emu.search(filters=filters)) == ["ds:d"]
