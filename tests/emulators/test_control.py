"""Emulator control API over real HTTP: every fault kind, stats, records, token expiry, reset.

The BE's retry, batching and duplicate-safety tests depend on these knobs doing exactly this.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from emulators.cherwell_store import INCIDENT_BUS_OB_ID
from tests.emulators.conftest import (
    CORRELATION,
    QUERY,
    SAVE,
    SEARCH,
    UPSERT,
    Emulator,
    incident,
    upsert,
    work_order,
)

SOQL = {"q": "SELECT Id FROM WorkOrder"}
SEARCH_BODY = {"busObId": INCIDENT_BUS_OB_ID}


def faults(emu: Emulator, **spec: object) -> None:
    response = emu.client.post("/_emulator/faults", json=spec)
    assert response.status_code == 200, response.text


def test_fail_next_fails_that_many_requests_with_retry_after(emu: Emulator) -> None:
    """fail_next=2: two 503s with Retry-After in Cherwell's envelope, then normal answers."""
    emu.cherwell()
    faults(emu, platform="cherwell", fail_next=2, status=503, retry_after=1)
    answers = [emu.client.post(SEARCH, json=SEARCH_BODY) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].headers["Retry-After"] == "1"
    assert answers[0].json()["hasError"] is True


def test_sfyc_403_is_request_limit_exceeded(emu: Emulator) -> None:
    """An injected 403 on SFyC carries REQUEST_LIMIT_EXCEEDED in the error list."""
    emu.sfyc()
    faults(emu, platform="sfyc", fail_next=1, status=403)
    response = emu.client.get(QUERY, params=SOQL)
    assert response.status_code == 403
    assert response.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def test_sfyc_503_is_server_unavailable(emu: Emulator) -> None:
    """An injected 503 on SFyC answers Salesforce's list shape, with the limit header."""
    emu.sfyc()
    faults(emu, platform="sfyc", fail_next=1, status=503)
    response = emu.client.patch(UPSERT, json={"records": [work_order("a")]})
    assert response.status_code == 503
    assert response.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert "Sforce-Limit-Info" in response.headers
    assert emu.client.get("/_emulator/records/workorder").json() == []


def test_error_rate_one_fails_every_api_request_but_not_tokens(emu: Emulator) -> None:
    """error_rate=1 fails API calls; token requests still succeed (no endpoint named)."""
    faults(emu, platform="all", error_rate=1.0, status=502)
    client = emu.cherwell()
    assert client.post(SEARCH, json=SEARCH_BODY).status_code == 502
    assert emu.sfyc().get(QUERY, params=SOQL).status_code == 502


def test_token_requests_fail_when_the_endpoint_names_them(emu: Emulator) -> None:
    """endpoint="token" aims fail_next at the token endpoint itself."""
    faults(emu, platform="cherwell", fail_next=1, status=503, endpoint="/token")
    form = {"grant_type": "password", "client_id": "c", "username": "u", "password": "p"}
    assert emu.client.post("/CherwellAPI/token", data=form).status_code == 503
    assert emu.client.post("/CherwellAPI/token", data=form).status_code == 200


def test_error_rate_zero_fails_nothing(emu: Emulator) -> None:
    """error_rate=0 with only latency set lets every request through."""
    emu.cherwell()
    faults(emu, platform="cherwell", error_rate=0.0, latency_ms=1)
    assert all(emu.client.post(SEARCH, json=SEARCH_BODY).status_code == 200 for _ in range(5))


def test_endpoint_filter_limits_faults_to_matching_paths(emu: Emulator) -> None:
    """Faults aimed at savebusinessobjectbatch leave getsearchresults alone."""
    emu.cherwell()
    faults(emu, platform="cherwell", error_rate=1.0, endpoint="savebusinessobjectbatch")
    assert emu.client.post(SEARCH, json=SEARCH_BODY).status_code == 200
    assert emu.client.post(SAVE, json={"saveRequests": []}).status_code == 503


def test_platform_filter_leaves_the_other_platform_alone(emu: Emulator) -> None:
    """A Cherwell fault does not touch SFyC."""
    faults(emu, platform="cherwell", error_rate=1.0)
    assert emu.sfyc().get(QUERY, params=SOQL).status_code == 200


def test_latency_delays_the_answer_without_blocking_the_server(emu: Emulator) -> None:
    """A delayed search is counted but unanswered while the server still serves others."""
    token = emu.cherwell_login()["access_token"]
    faults(emu, platform="cherwell", latency_ms=1500, endpoint="getsearchresults")
    url = str(emu.client.base_url)
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(
            httpx.post,
            url + SEARCH,
            json=SEARCH_BODY,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        key = f"cherwell POST {SEARCH}"
        for _ in range(200):
            if emu.client.get("/_emulator/stats").json()["requests"].get(key):
                break
            time.sleep(0.005)
        assert emu.client.get("/healthz").status_code == 200
        assert not slow.done()
        assert slow.result().status_code == 200


def test_item_error_rate_one_fails_every_cherwell_item(emu: Emulator) -> None:
    """item_error_rate=1: every SaveResponse has hasError and fieldValidationErrors."""
    emu.cherwell()
    faults(emu, platform="cherwell", item_error_rate=1.0)
    body = {"saveRequests": [incident(**{CORRELATION: str(i)}) for i in range(3)]}
    responses = emu.client.post(SAVE, json=body).json()["responses"]
    assert all(r["hasError"] and r["fieldValidationErrors"] for r in responses)
    assert emu.client.get("/_emulator/stats").json()["records"]["incident"] == 0


def test_item_error_rate_half_fails_some_items_and_saves_the_rest(emu: Emulator) -> None:
    """item_error_rate=0.5 over 200 items: some fail, the others are stored."""
    emu.sfyc()
    faults(emu, platform="sfyc", item_error_rate=0.5)
    results = upsert(emu, *(work_order(str(i)) for i in range(200)))
    failed = [r for r in results if not r["success"]]
    assert 0 < len(failed) < 200
    assert failed[0]["errors"][0]["statusCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    stored = emu.client.get("/_emulator/stats").json()["records"]["workorder"]
    assert stored == 200 - len(failed)


def test_lose_response_applies_the_request_then_answers_504(emu: Emulator) -> None:
    """lose_response_next=1: the incident is created, yet the client sees 504."""
    emu.cherwell()
    faults(emu, platform="cherwell", lose_response_next=1, endpoint="savebusinessobjectbatch")
    lost = emu.client.post(SAVE, json={"saveRequests": [incident(**{CORRELATION: "x"})]})
    assert lost.status_code == 504
    assert emu.client.get("/_emulator/stats").json()["records"]["incident"] == 1
    again = emu.client.post(SAVE, json={"saveRequests": []})
    assert again.status_code == 200


def test_delete_faults_clears_them(emu: Emulator) -> None:
    """After DELETE /_emulator/faults requests succeed again."""
    emu.cherwell()
    faults(emu, platform="all", error_rate=1.0)
    cleared = emu.client.delete("/_emulator/faults").json()
    assert cleared == {"cherwell": None, "sfyc": None}
    assert emu.client.post(SEARCH, json=SEARCH_BODY).status_code == 200


def test_invalid_fault_spec_is_rejected(emu: Emulator) -> None:
    """An error_rate above 1 is a 422 naming the field."""
    response = emu.client.post("/_emulator/faults", json={"error_rate": 2})
    assert response.status_code == 422
    assert "error_rate" in response.text


def test_stats_count_requests_per_route_and_records_per_object(emu: Emulator) -> None:
    """Stats key requests by "<platform> <METHOD> <route>" and count stored records."""
    emu.cherwell()
    emu.client.post(SAVE, json={"saveRequests": [incident(**{CORRELATION: "a"})]})
    emu.client.post(SEARCH, json=SEARCH_BODY)
    emu.client.post(SEARCH, json=SEARCH_BODY)
    stats = emu.client.get("/_emulator/stats").json()
    assert stats["requests"] == {
        "cherwell POST /CherwellAPI/token": 1,
        f"cherwell POST {SAVE}": 1,
        f"cherwell POST {SEARCH}": 2,
    }
    assert stats["records"] == {"incident": 1, "journal": 0, "workorder": 0}


def test_records_of_an_unknown_object_are_rejected(emu: Emulator) -> None:
    """Only incident, journal and workorder can be listed."""
    assert emu.client.get("/_emulator/records/case").status_code == 422


def test_tokens_expire_makes_the_next_call_401_on_both_platforms(emu: Emulator) -> None:
    """After tokens/expire both platforms answer 401 to the old tokens."""
    cherwell_token = emu.cherwell_login()["access_token"]
    sfyc = emu.sfyc()
    assert emu.client.post("/_emulator/tokens/expire").status_code == 200
    assert sfyc.get(QUERY, params=SOQL).status_code == 401
    headers = {"Authorization": f"Bearer {cherwell_token}"}
    assert emu.client.post(SEARCH, json=SEARCH_BODY, headers=headers).status_code == 401


def test_reset_forgets_records_tokens_faults_and_counters(emu: Emulator) -> None:
    """After reset: no records, old tokens rejected, no faults, no counts, ids restart."""
    client = emu.cherwell()
    emu.save(incident(**{CORRELATION: "a"}))
    faults(emu, platform="sfyc", error_rate=1.0)
    assert emu.client.post("/_emulator/reset").status_code == 200
    assert client.post(SEARCH, json=SEARCH_BODY).status_code == 401
    stats = emu.client.get("/_emulator/stats").json()
    assert stats["records"] == {"incident": 0, "journal": 0, "workorder": 0}
    assert stats["requests"] == {f"cherwell POST {SEARCH}": 1}
    assert emu.client.get("/_emulator/faults").json() == {"cherwell": None, "sfyc": None}
    emu.cherwell()
    assert emu.save(incident(**{CORRELATION: "b"}))["responses"][0]["busObPublicId"] == "100001"
