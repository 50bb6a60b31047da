"""The retry predicate, Retry-After parsing, backoff and the adapters' one re-login on 401,
with httpx.MockTransport (no network)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from be_service.config import CherwellFields
from be_service.pipeline.steps import PlatformError
from be_service.platforms.cherwell import CherwellClient, CherwellCredentials
from be_service.platforms.http import (
    failure_from_exception,
    failure_from_response,
    parse_retry_after,
)
from be_service.platforms.sfyc import SfycClient, SfycCredentials, WorkOrder
from emulators.sfyc_store import parse_soql
from tests.be.pipeline.conftest import item
from ticketing_common.backoff import Backoff

BACKOFF = Backoff(base_seconds=1, cap_seconds=8, retry_after_cap_seconds=60)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (400, False),
        (404, False),
        (409, False),
        (422, False),
        (403, False),
    ],
)
def test_only_transient_statuses_are_retryable(status, retryable):
    """429 and 5xx are retried; other 4xx are not."""
    assert failure_from_response(httpx.Response(status, text="x")).retryable is retryable


def test_a_salesforce_request_limit_403_is_retryable():
    """403 REQUEST_LIMIT_EXCEEDED is a limit that clears by itself."""
    body = '[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]'
    assert failure_from_response(httpx.Response(403, text=body)).retryable


def test_retry_after_in_seconds_and_as_an_http_date():
    """Retry-After is read as delay-seconds or as an HTTP date relative to now."""
    now = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now=now) == 7
    assert parse_retry_after("Sun, 22 Nov 2026 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("soon", now=now) is None


def test_transport_errors_are_retryable():
    """Refused connections and timeouts are retried."""
    request = httpx.Request("POST", "http://127.0.0.1:1/x")
    assert failure_from_exception(httpx.ConnectError("refused", request=request)).retryable
    assert failure_from_exception(httpx.ReadTimeout("slow", request=request)).retryable


def test_backoff_is_capped_and_honours_a_longer_retry_after():
    """The jittered wait never exceeds the cap, and a Retry-After raises it."""
    assert all(0 <= BACKOFF.delay(10) <= 8 for _ in range(50))
    assert BACKOFF.delay(1, retry_after=30) == 30
    assert BACKOFF.delay(1, retry_after=600) == 60


def _cherwell(handler) -> CherwellClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    credentials = CherwellCredentials("http://cherwell/CherwellAPI", "cid", "user", "pw")
    return CherwellClient(http, credentials, CherwellFields())


async def test_cherwell_logs_in_again_once_on_401():
    """An expired token gets one new login and the call is repeated with the new token."""
    logins = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            logins.append(request)
            return httpx.Response(200, json={"access_token": f"t{len(logins)}", "expires_in": 1199})
        if request.headers["authorization"] == "Bearer t1":
            return httpx.Response(401, json={"Message": "Authorization has been denied"})
        return httpx.Response(200, json={"businessObjects": [], "hasMoreRecords": False})

    assert await _cherwell(handler).search_open(["k"], page_size=10) == {}
    assert len(logins) == 2


async def test_cherwell_gives_up_after_a_second_401():
    """A 401 right after a fresh login is a non-retryable failure, not a login loop."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 1199})
        return httpx.Response(401, json={"Message": "denied"})

    with pytest.raises(PlatformError) as caught:
        await _cherwell(handler).search_open(["k"], page_size=10)
    assert (caught.value.failure.http_status, caught.value.failure.retryable) == (401, False)


async def test_cherwell_search_follows_pages():
    """hasMoreRecords makes the adapter ask for the next page until the last one."""
    pages = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 1199})
        page = json.loads(request.content)["pageNumber"]
        pages.append(page)
        key = f"k{page}"
        obj = {
            "busObRecId": f"r{page}",
            "busObPublicId": str(page),
            "fields": [{"fieldId": CherwellFields().field_correlation_key, "value": key}],
        }
        return httpx.Response(200, json={"businessObjects": [obj], "hasMoreRecords": page < 3})

    found = await _cherwell(handler).search_open(["k1", "k2", "k3"], page_size=1)
    assert pages == [1, 2, 3]
    assert sorted(found) == ["k1", "k2", "k3"]


async def test_sfyc_logs_in_again_once_on_invalid_session():
    """INVALID_SESSION_ID gets one new client-credentials login and the upsert is repeated."""
    logins = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/token"):
            logins.append(request)
            return httpx.Response(200, json={"access_token": f"s{len(logins)}"})
        if request.headers["authorization"] == "Bearer s1":
            return httpx.Response(
                401,
                json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
            )
        return httpx.Response(200, json={"totalSize": 0, "done": True, "records": []})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = SfycClient(
        http, SfycCredentials("http://sfyc/services", "id", "secret", "v60.0", "External_Key__c")
    )
    assert await client.work_order_numbers(["a#1"]) == {}
    assert len(logins) == 2


def _sfyc_answering(handler: Callable[[httpx.Request], httpx.Response]) -> SfycClient:
    """A client whose queries `handler` answers (after a login it grants)."""

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/token"):
            return httpx.Response(200, json={"access_token": "s"})
        return handler(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(route))
    return SfycClient(
        http, SfycCredentials("http://sfyc/services", "id", "secret", "v60.0", "External_Key__c")
    )


async def test_sfyc_number_queries_stay_within_the_uri_limit():
    """External keys hold free text: 200 long ones, mostly escapes once encoded, are read
    back in several queries, each URI within Salesforce's ~16 000 characters, none lost."""
    in_lists: list[tuple[str, ...]] = []
    longest = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal longest
        longest = max(longest, len(str(request.url)))
        query = parse_soql(request.url.params["q"])
        assert query.where_values is not None
        in_lists.append(query.where_values)
        records = [
            {"Id": f"id{n}", "WorkOrderNumber": f"n{n}", "External_Key__c": key}
            for n, key in enumerate(query.where_values)
        ]
        return httpx.Response(
            200, json={"totalSize": len(records), "done": True, "records": records}
        )

    keys = [f"snr-upstream:{'ñ/#' * 60}{n}#1" for n in range(200)]
    numbers = await _sfyc_answering(handler).work_order_numbers(keys)
    assert len(in_lists) > 1
    assert longest < 16_000
    assert [key for values in in_lists for key in values] == keys
    assert sorted(numbers) == sorted(keys)


async def test_sfyc_reads_a_requests_numbers_back_by_id_in_one_query():
    """A request of 200 work orders (the composite upsert's most) is read back at once."""
    asked: list[tuple[str, ...]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        query = parse_soql(request.url.params["q"])
        assert query.where_field == "Id"
        assert query.where_values is not None
        asked.append(query.where_values)
        records = [{"Id": i, "WorkOrderNumber": f"WO-{i}"} for i in query.where_values]
        return httpx.Response(
            200, json={"totalSize": len(records), "done": True, "records": records}
        )

    ids = [f"0WO{n:015d}" for n in range(200)]  # a request's most (the composite upsert's)
    numbers = await _sfyc_answering(handler).work_order_numbers_by_id(ids)
    assert [len(values) for values in asked] == [200]
    assert numbers == {i: f"WO-{i}" for i in ids}


async def test_the_work_order_step_takes_each_number_by_the_id_its_upsert_answered():
    """The upsert answers Ids A and B and refuses the third; the query finds A (and an
    unrelated D): A completes with its number, B is refused (no number to show), the third
    with the platform's error."""
    items = [
        item(revision_id=n, step="workorder", cherwell={"public_id": f"{n}00"}) for n in (1, 2, 3)
    ]
    queried: list[tuple[str, ...]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            return httpx.Response(
                200,
                json=[
                    {"id": "A", "success": True, "errors": [], "created": True},
                    {"id": "B", "success": True, "errors": [], "created": True},
                    {
                        "id": None,
                        "success": False,
                        "created": False,
                        "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Subject"}],
                    },
                ],
            )
        query = parse_soql(request.url.params["q"])
        assert query.where_values is not None
        queried.append(query.where_values)
        records = [{"Id": "A", "WorkOrderNumber": "00001001"}, {"Id": "D", "WorkOrderNumber": "9"}]
        return httpx.Response(200, json={"totalSize": 2, "done": True, "records": records})

    outcomes = await WorkOrder(_sfyc_answering(handler)).send(items, request_size=100)
    assert queried == [("A", "B")]
    by_revision = {o.revision_id: o for o in outcomes}
    assert by_revision[1].ok
    assert by_revision[1].ids == {"sfyc": {"id": "A", "number": "00001001"}}
    assert not by_revision[2].ok
    assert by_revision[2].error == "work order upserted but its number could not be read back"
    assert not by_revision[3].ok
    assert "REQUIRED_FIELD_MISSING" in (by_revision[3].error or "")


async def test_sfyc_query_carries_every_value_exactly():
    """The query string is encoded by the adapter: whatever a key holds (spaces, '&', '=',
    '#', '%', '+', quotes, backslashes, accents) reaches the platform's SOQL parser as sent."""
    seen: list[tuple[str, ...]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        query = parse_soql(request.url.params["q"])
        assert query.where_values is not None
        seen.append(query.where_values)
        return httpx.Response(200, json={"totalSize": 0, "done": True, "records": []})

    keys = ["a b&c=d#1", "o'brien\\x#2", "100%+1 (x, y)#3", "ñandú/ü?#4", "TKT-1#5"]
    assert await _sfyc_answering(handler).work_order_numbers(keys) == {}
    assert seen == [tuple(keys)]
