"""Whatever way the database is unreachable during a request, the answer is the documented 503
`unavailable` with Retry-After (the client resends), never a 500."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ticketing_common.web import create_base_app

FAILURES = {
    "refused": ConnectionRefusedError(111, "Connect call failed"),
    "unreachable": OSError(113, "No route to host"),
    "timeout": TimeoutError(),
    "operational": OperationalError("SELECT 1", {}, Exception("server closed the connection")),
    "interface": InterfaceError("SELECT 1", {}, Exception("connection is closed")),
    "pool": PoolTimeout("QueuePool limit reached"),
}


@pytest.mark.parametrize("name", list(FAILURES))
async def test_database_failures_are_503_with_retry_after(name: str) -> None:
    """Each way of not reaching Postgres is a 503 `unavailable` with Retry-After."""
    app = create_base_app(title="t", description="", version="0")

    @app.get("/probe")
    async def probe() -> None:
        raise FAILURES[name]

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/probe")
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable"
    assert int(response.headers["retry-after"]) >= 1
