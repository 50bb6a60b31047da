"""The request boundary of every WM route: authentication before the body, strict JSON
(no NUL, bounded nesting) and 405 answers that list every method of the path."""

from __future__ import annotations

import httpx
import pytest

from tests.wm.conftest import ADMIN, INGEST
from tests.wm.support import T0, iso
from tests.wm.test_text_inputs import fields, stored_counts

NUL = "\u0000"


async def test_deeply_nested_unknown_field_is_422(client: httpx.AsyncClient) -> None:
    """Nesting deep enough to exhaust a parser's stack is a 422 on the body, not a 500."""
    head = b'{"aggregation_id":"a","generated_at":"' + iso(T0).encode() + b'","entries":[],'
    body = head + b'"x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = await client.post(
        "/api/v1/aggregations/snr-upstream",
        content=body,
        headers={**INGEST, "content-type": "application/json"},
    )
    assert fields(response) == ["body"]
    assert await stored_counts(client) == (0, 0, 0)


@pytest.mark.parametrize(
    ("depth", "field"),
    [(40, "window_hours" + "[0]" * 32), (5000, "body")],
    ids=["beyond-limit", "beyond-stack"],
)
async def test_deep_json_body_is_422(client: httpx.AsyncClient, depth: int, field: str) -> None:
    """A pydantic-validated body nested too deep is a 422 on its field or on body."""
    body = b'{"window_hours":' + b"[" * depth + b"]" * depth + b"}"
    response = await client.patch(
        "/api/v1/settings", content=body, headers={**ADMIN, "content-type": "application/json"}
    )
    assert fields(response) == [field]


async def test_backend_token_with_nul_is_422(client: httpx.AsyncClient) -> None:
    """A NUL in a registration's intake_token is a 422 naming intake_token."""
    registration = {"url": "http://127.0.0.1:9", "intake_token": f"t{NUL}"}
    response = await client.put("/api/v1/backends/be-1", json=registration, headers=ADMIN)
    assert fields(response) == ["intake_token"]
    assert await stored_counts(client) == (0, 0, 0)


@pytest.mark.parametrize(
    ("method", "path"),
    [("PATCH", "/api/v1/settings"), ("PUT", "/api/v1/backends/be-1"), ("PUT", "/api/v1/topology")],
)
@pytest.mark.parametrize("body", [b"{", b'{"x": NaN}', b'"\\u0000"'], ids=["cut", "nan", "nul"])
async def test_bad_body_without_token_is_401(
    client: httpx.AsyncClient, method: str, path: str, body: bytes
) -> None:
    """Authentication comes before the body: a stranger learns nothing from a 422."""
    headers = {"content-type": "application/json"}
    response = await client.request(method, path, content=body, headers=headers)
    assert response.status_code == 401, response.text


async def test_405_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    """OPTIONS and DELETE on /settings answer 405 with Allow naming GET and PATCH."""
    for method in ("OPTIONS", "DELETE"):
        response = await client.request(method, "/api/v1/settings", headers=ADMIN)
        assert response.status_code == 405
        assert set(response.headers["allow"].split(", ")) >= {"GET", "PATCH"}


@pytest.mark.parametrize(
    "body",
    [b'{"window_hours": "\xff"}', b'{"window_hours": NaN}', b'{"window_hours": 1e400}'],
    ids=["bad-utf8", "nan", "overflow"],
)
async def test_a_body_that_is_not_plain_json_is_422_on_body(
    client: httpx.AsyncClient, body: bytes
) -> None:
    """Invalid UTF-8, NaN and a number no float holds are refused before the model."""
    response = await client.patch(
        "/api/v1/settings", content=body, headers={**ADMIN, "content-type": "application/json"}
    )
    assert fields(response) == ["body"]


async def test_a_utf8_byte_order_mark_is_tolerated(client: httpx.AsyncClient) -> None:
    """Some clients (Windows) start a UTF-8 body with a byte order mark."""
    response = await client.patch(
        "/api/v1/settings",
        content=b"\xef\xbb\xbf" + b'{"window_hours": 12}',
        headers={**ADMIN, "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["window_hours"] == 12
