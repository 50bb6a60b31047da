"""Inputs that used to crash a BE request: each is now a 4xx naming the field, storing nothing."""

from __future__ import annotations

from typing import Any

import pytest

NUL = "\u0000"


def fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [d["field"] for d in response.json()["error"]["details"]]


@pytest.fixture
def be(make_be: Any) -> Any:
    return make_be(processing_enabled=False)


@pytest.mark.parametrize("name", ["category", "dedup_key"])
def test_list_filters_with_nul_are_422(be: Any, name: str) -> None:
    """The list's text filters refuse a NUL instead of sending it to Postgres."""
    response = be.client.get("/api/v1/tickets", params={name: f"x{NUL}"})
    assert fields(response) == [f"query.{name}"]
