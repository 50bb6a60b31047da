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
from be_service.platforms.sfyc import SfycClient, SfycCredentials
from emulators.sfyc_store import parse_soql
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


async def test_sfyc_number_query_is_split_into_chunks_of_50_keys():
    """200 external keys are read back in four queries of 50, so no URI grows unbounded."""
    in_lists = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/token"):
            return httpx.Response(200, json={"access_token": "s"})
        keys = request.url.params["q"].split(" IN (")[1].rstrip(")").split(", ")
        in_lists.append(keys)
        records = [
            {"Id": f"id{k}", "WorkOrderNumber": f"n{k}", "External_Key__c": k.strip("'")}
            for k in keys
        ]
        return httpx.Response(
            200, json={"totalSize": len(records), "done": True, "records": records}
        )

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = SfycClient(
        http, SfycCredentials("http://sfyc/services", "id", "secret", "v60.0", "External_Key__c")
    )
    keys = [f"k{n}#1" for n in range(200)]
    numbers = await client.work_order_numbers(keys)
    assert [len(chunk) for chunk in in_lists] == [50, 50, 50, 50]
    assert sorted(numbers) == sorted(keys)


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


async def test_sfyc_numbers_are_read_back_by_record_id_200_at_a_time():
    """Record Ids are short: 450 of them take three queries (200, 200, 50), where external
    keys take one per 50."""
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

    ids = [f"0WO{n:015d}" for n in range(450)]
    numbers = await _sfyc_answering(handler).work_order_numbers_by_id(ids)
    assert [len(values) for values in asked] == [200, 200, 50]
    assert numbers == {i: f"WO-{i}" for i in ids}


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
