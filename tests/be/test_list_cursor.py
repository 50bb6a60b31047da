"""The operator list's cursor on the BE: forged cursors are a 422 naming `cursor`, never a 500."""

from __future__ import annotations

import base64

FORGED_CURSORS = [
    "\u00b9",  # sent as %C2%B9: str.isdigit() said yes, int() said no
    "99999999999999999999",
    base64.urlsafe_b64encode(b"[99999999999999999999]").decode(),  # beyond bigint
    base64.urlsafe_b64encode(b"[1e23]").decode(),
    "-1",
]


def test_forged_cursors_are_422_naming_cursor(make_be):
    """Non-ASCII digits, ids beyond bigint, floats: each answers 422 on the `cursor` field."""
    be = make_be(processing_enabled=False)
    for cursor in FORGED_CURSORS:
        response = be.client.get("/api/v1/tickets", params={"cursor": cursor})
        assert response.status_code == 422, (cursor, response.text)
        assert response.json()["error"]["details"][0]["field"] == "cursor"
