"""The database away during a request: a 503 with Retry-After (the client resends), never a
500, and nothing stored."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.support.database import refused_database_url
from tests.wm.conftest import ADMIN
from tests.wm.support import push, push_body
from tests.wm.test_text_inputs import good_entry, stored_counts
from ticketing_common.db import create_engine, make_sessionmaker


async def test_push_while_database_is_down_is_503(app: FastAPI, client: httpx.AsyncClient) -> None:
    """A push the database cannot take is a 503 with Retry-After, so the aggregator retries."""
    working = app.state.sessionmaker
    down = create_engine(refused_database_url())
    app.state.sessionmaker = make_sessionmaker(down)
    try:
        response = await push(client, push_body(good_entry()))
        listing = await client.get("/api/v1/tickets", headers=ADMIN)
    finally:
        app.state.sessionmaker = working
        await down.dispose()
    for answer in (response, listing):
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "unavailable"
        assert int(answer.headers["retry-after"]) >= 1
    assert await stored_counts(client) == (0, 0, 0)
