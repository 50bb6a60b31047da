"""Bad pushes: a 4xx naming the field and the entry, and nothing stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.wm.conftest import ADMIN, INGEST
from tests.wm.support import T0, entry, iso, push, push_body, sample
from wm_service.services.push_decode import decode_push

MIN = timedelta(minutes=1)


async def assert_nothing_stored(client: httpx.AsyncClient) -> None:
    pushes = (await client.get("/api/v1/aggregations", headers=ADMIN)).json()["items"]
    tickets = (await client.get("/api/v1/tickets", headers=ADMIN)).json()["items"]
    assert pushes == [] and tickets == []


def good_entry(entity_id: str = "E0") -> dict[str, Any]:
    return entry(entity_id, sample(20.0, T0 - MIN))


async def rejected(client: httpx.AsyncClient, body: Any, *, kind: str = "snr-upstream") -> dict:
    if isinstance(body, bytes):
        response = await client.post(
            f"/api/v1/aggregations/{kind}",
            content=body,
            headers={**INGEST, "content-type": "application/json"},
        )
    else:
        response = await push(client, body, kind)
    assert response.status_code == 422, response.text
    await assert_nothing_stored(client)
    error: dict = response.json()["error"]
    return error


async def test_unknown_kind_is_rejected(client: httpx.AsyncClient) -> None:
    """A kind outside the three aggregations is a 422 naming kind."""
    error = await rejected(client, push_body(good_entry()), kind="snr-downstream")
    assert error["details"][0]["field"] == "path.kind"


async def test_missing_sample_field_names_its_path(client: httpx.AsyncClient) -> None:
    """A sample without `at` is reported as entries[1].samples[0].at."""
    bad = {"entity_id": "E1", "samples": [{"value": 20.0}]}
    error = await rejected(client, push_body(good_entry(), bad))
    assert error["details"][0]["field"] == "entries[1].samples[0].at"


async def test_missing_entity_id_is_rejected(client: httpx.AsyncClient) -> None:
    """An entry without entity_id is reported as entries[0].entity_id."""
    error = await rejected(client, push_body({"samples": []}))
    assert error["details"][0]["field"] == "entries[0].entity_id"


async def test_non_numeric_value_is_rejected(client: httpx.AsyncClient) -> None:
    """A string value is reported with its path."""
    bad = entry("E1", {"at": iso(T0 - MIN), "value": "low"})
    error = await rejected(client, push_body(good_entry(), bad))
    assert error["details"][0]["field"] == "entries[1].samples[0].value"


async def test_unparseable_timestamp_is_rejected(client: httpx.AsyncClient) -> None:
    """A timestamp that is not RFC 3339 is reported with its path."""
    bad = entry("E1", {"at": "yesterday", "value": 20.0})
    error = await rejected(client, push_body(bad))
    assert error["details"][0]["field"] == "entries[0].samples[0].at"


async def test_timestamp_without_zone_is_rejected(client: httpx.AsyncClient) -> None:
    """A naive timestamp is ambiguous and rejected."""
    bad = entry("E1", {"at": "2026-11-20T10:00:00", "value": 20.0})
    error = await rejected(client, push_body(bad))
    assert error["details"][0]["field"] == "entries[0].samples[0].at"


async def test_sample_after_push_time_beyond_skew_is_rejected(client: httpx.AsyncClient) -> None:
    """A sample more than 5 minutes after generated_at is rejected, naming entity and path."""
    bad = entry("E7", sample(20.0, T0 + 6 * MIN))
    error = await rejected(client, push_body(good_entry(), bad))
    assert error["details"][0]["field"] == "entries[1].samples[0].at"
    assert "E7" in error["details"][0]["message"]


async def test_sample_within_skew_is_accepted(client: httpx.AsyncClient) -> None:
    """Up to 5 minutes of clock skew after generated_at is tolerated."""
    response = await push(client, push_body(entry("E1", sample(20.0, T0 + 4 * MIN))))
    assert response.status_code == 200


async def test_push_from_the_future_is_rejected(client: httpx.AsyncClient) -> None:
    """generated_at more than 5 minutes ahead of the server clock is rejected."""
    future = datetime.now(UTC) + timedelta(hours=1)
    error = await rejected(client, push_body(entry("E1"), at=future))
    assert error["details"][0]["field"] == "generated_at"


async def test_subscribers_beyond_int32_are_rejected(client: httpx.AsyncClient) -> None:
    """Subscribers above 2**31-1 (the column's range) are a 422 naming the entry's field."""
    error = await rejected(
        client, push_body(entry("E1", sample(20.0, T0 - MIN), subscribers=2**31))
    )
    assert error["details"][0]["field"] == "entries[0].subscribers"


async def test_unknown_severity_is_rejected(client: httpx.AsyncClient) -> None:
    """A severity outside the accepted set is reported with its path."""
    bad = entry("E1", sample(20.0, T0 - MIN, "disaster"))
    error = await rejected(client, push_body(bad))
    assert error["details"][0]["field"] == "entries[0].samples[0].severity"


async def test_duplicate_entity_is_rejected(client: httpx.AsyncClient) -> None:
    """The same entity twice in one push names the second occurrence and the first."""
    error = await rejected(client, push_body(good_entry("E1"), good_entry("E2"), good_entry("E1")))
    assert error["details"][0]["field"] == "entries[2].entity_id"
    assert "entries[0]" in error["details"][0]["message"]


async def test_several_problems_are_reported_together(client: httpx.AsyncClient) -> None:
    """Semantic problems are collected in one pass, not one per attempt."""
    body = push_body(
        entry("E1", sample(20.0, T0 + 10 * MIN)), entry("E2", sample(20.0, T0 + 11 * MIN))
    )
    error = await rejected(client, body)
    assert [d["field"] for d in error["details"]] == [
        "entries[0].samples[0].at",
        "entries[1].samples[0].at",
    ]


async def test_malformed_json_is_rejected(client: httpx.AsyncClient) -> None:
    """A body that is not JSON is a 422 on `body`."""
    error = await rejected(client, b'{"aggregation_id": ')
    assert error["details"][0]["field"] == "body"


async def test_bad_entry_stores_nothing_of_the_good_ones(client: httpx.AsyncClient) -> None:
    """One bad entry rejects the whole push: the critical good entry opens no ticket."""
    await rejected(client, push_body(good_entry("E1"), entry("E2", sample(20.0, T0 + 9 * MIN))))


async def test_unsupported_content_type_is_415(client: httpx.AsyncClient) -> None:
    """Only JSON and CSV bodies are accepted."""
    response = await client.post(
        "/api/v1/aggregations/snr-upstream",
        content=b"<xml/>",
        headers={**INGEST, "content-type": "application/xml"},
    )
    assert response.status_code == 415
    await assert_nothing_stored(client)


@pytest.mark.parametrize("app_overrides", [{"max_push_bytes": 2048}], indirect=True)
async def test_body_over_the_limit_is_413(client: httpx.AsyncClient, app: FastAPI) -> None:
    """A push larger than WM_MAX_PUSH_BYTES is refused with 413 and nothing stored."""
    body = push_body(*(good_entry(f"E{i}") for i in range(100)))
    response = await push(client, body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    await assert_nothing_stored(client)


async def test_push_without_token_is_401(client: httpx.AsyncClient) -> None:
    """Pushes need a bearer token."""
    response = await client.post("/api/v1/aggregations/snr-upstream", json=push_body())
    assert response.status_code == 401


async def test_push_with_wrong_token_is_403(client: httpx.AsyncClient) -> None:
    """A wrong token is refused with 403."""
    response = await client.post(
        "/api/v1/aggregations/snr-upstream",
        json=push_body(),
        headers={"Authorization": "Bearer nope"},
    )
    assert response.status_code == 403


async def test_admin_token_may_push(client: httpx.AsyncClient) -> None:
    """Operators can replay a push with the admin token."""
    response = await client.post(
        "/api/v1/aggregations/snr-upstream", json=push_body(good_entry()), headers=ADMIN
    )
    assert response.status_code == 200


async def test_a_sample_that_can_never_count_is_still_checked(client: httpx.AsyncClient) -> None:
    """Samples with a severity other than critical are not kept after decoding, but a bad one
    still refuses the push, naming it."""
    late = sample(35.0, T0 + timedelta(hours=1), "normal")
    error = await rejected(client, push_body(entry("E0", sample(20.0, T0 - MIN), late)))
    assert error["details"][0]["field"] == "entries[0].samples[1].at"


def test_decoding_keeps_the_samples_that_may_count_and_shares_repeated_places() -> None:
    """What a decoded push holds: samples marked critical or without severity (judged by the
    threshold later), none marked otherwise; one copy of a repeated place name, channel or
    subscriber count (above 256, which Python would not share by itself)."""
    place = {
        "market": "Monterrey",
        "hub": "HUB1",
        "ccap": "CCAP1",
        "service_group": "N1",
        "channel": "US-N1/0/1",
        "subscribers": 1200,
    }
    body = push_body(
        entry(
            "E0",
            sample(20.0, T0 - 3 * MIN, "critical"),
            sample(35.0, T0 - 2 * MIN, "normal"),
            sample(24.0, T0 - MIN, "minor"),
            sample(19.0, T0, None),
            **place,
        ),
        entry("E1", sample(36.0, T0, "ok"), **place),
    )
    decoded = decode_push(
        json.dumps(body).encode(),
        media_type="application/json",
        aggregation_id=None,
        generated_at=None,
        now=T0,
        skew=timedelta(minutes=5),
    )
    first, second = decoded.entries
    assert [(s.value, s.severity) for s in first.samples] == [(20.0, "critical"), (19.0, None)]
    assert second.samples == ()
    for name in place:
        assert getattr(first, name) == place[name]
        assert getattr(first, name) is getattr(second, name)


async def post_in_chunks(
    client: httpx.AsyncClient, body: dict[str, Any], *, size: int
) -> httpx.Response:
    """A push sent with chunked transfer encoding: no Content-Length header."""
    text = json.dumps(body).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(text), size):
            yield text[start : start + size]

    return await client.post(
        "/api/v1/aggregations/snr-upstream",
        content=chunks(),
        headers={**INGEST, "content-type": "application/json"},
    )


async def test_a_body_sent_in_chunks_without_a_length_is_read_whole(
    client: httpx.AsyncClient,
) -> None:
    """A push sent with chunked transfer encoding (no Content-Length) is read and applied."""
    body = push_body(*(good_entry(f"E{i}") for i in range(30)))
    response = await post_in_chunks(client, body, size=97)
    assert response.status_code == 200, response.text
    assert response.json()["entries"] == 30


@pytest.mark.parametrize("app_overrides", [{"max_push_bytes": 2048}], indirect=True)
async def test_a_chunked_body_over_the_limit_is_413(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """Without a declared length the limit is applied as the body arrives."""
    body = push_body(*(good_entry(f"E{i}") for i in range(100)))
    response = await post_in_chunks(client, body, size=512)
    assert response.status_code == 413
    await assert_nothing_stored(client)
