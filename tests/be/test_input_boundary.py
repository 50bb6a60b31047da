"""Inputs that used to crash a BE request: each is now a 4xx naming the field, storing nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.be.conftest import INTAKE_TOKEN, make_ticket

NUL = "\u0000"


def fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [d["field"] for d in response.json()["error"]["details"]]


@pytest.fixture
def be(make_be: Any) -> Any:
    return make_be(processing_enabled=False)


def assert_rejected(be: Any, cases: list[tuple[dict[str, Any], str]]) -> None:
    """Each bad ticket, sent after a good one, is a 422 naming it; nothing is received."""
    for ticket, field in cases:
        got = fields(be.intake([make_ticket(), ticket]))
        assert got[0].startswith(field), got
    assert be.counts().get("Received", 0) == 0


@pytest.mark.parametrize("name", ["category", "dedup_key"])
def test_list_filters_with_nul_are_422(be: Any, name: str) -> None:
    """The list's text filters refuse a NUL instead of sending it to Postgres."""
    response = be.client.get("/api/v1/tickets", params={name: f"x{NUL}"})
    assert fields(response) == [f"query.{name}"]


def test_ticket_text_and_nesting_are_checked(be: Any) -> None:
    """NULs in typed or extra fields and deep nesting: a 422 naming the field."""
    deep: object = []
    for _ in range(100):
        deep = [deep]
    assert_rejected(
        be,
        [
            (make_ticket(title=f"T{NUL}"), "tickets[1].title"),
            (make_ticket(note=f"n{NUL}"), "tickets[1].note"),
            (make_ticket(extra=deep), "tickets[1].extra"),
        ],
    )


def test_bad_body_without_token_is_401(be: Any) -> None:
    """Authentication comes before the body on the intake and the settings."""
    bare = {"content-type": "application/json", "Authorization": ""}
    for method, path in (("POST", "/api/v1/tickets"), ("PATCH", "/api/v1/settings")):
        response = be.client.request(method, path, content=b"{", headers=bare)
        assert response.status_code == 401, response.text
    wrong = {"content-type": "application/json", "Authorization": f"Bearer {INTAKE_TOKEN}x"}
    assert be.client.post("/api/v1/tickets", content=b"{", headers=wrong).status_code == 403


def test_get_retry_errors_is_405(be: Any) -> None:
    """GET on the POST-only /retry-errors is a 405 allowing POST, not a ticket lookup."""
    response = be.client.get("/api/v1/tickets/retry-errors")
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "POST"


def test_ticket_numbers_fit_their_columns(be: Any) -> None:
    """A revision or subscriber count beyond a Postgres integer is a 422, not a 500."""
    assert_rejected(
        be,
        [
            (make_ticket(revision=2**40), "tickets[1].revision"),
            (make_ticket(subscribers=2**40), "tickets[1].subscribers"),
        ],
    )
