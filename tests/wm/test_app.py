"""The WM app shell: health probes, offline docs, bearer-token guards, the commit point."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from tests.support.database import reject_commits
from tests.wm.conftest import ADMIN, ADMIN_TOKEN, INGEST, wm_settings
from tests.wm.support import T0, entry, push, push_body, sample
from wm_service.main import create_app


async def test_healthz_answers_without_a_token(client: httpx.AsyncClient) -> None:
    """/healthz is open and says ok."""
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_ready_at_migration_head(client: httpx.AsyncClient) -> None:
    """/readyz is open and ready once the lifespan migrated the database."""
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_docs_reference_no_external_host(client: httpx.AsyncClient) -> None:
    """/docs loads Swagger UI from the app itself, so it works air-gapped."""
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "/_docs_assets/swagger-ui-bundle.js" in response.text
    assert "http://" not in response.text and "https://" not in response.text
    asset = await client.get("/_docs_assets/swagger-ui-bundle.js")
    assert asset.status_code == 200


async def test_admin_endpoint_without_token_is_401(client: httpx.AsyncClient) -> None:
    """No bearer token → 401 in the common error shape."""
    response = await client.get("/api/v1/settings")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_admin_endpoint_with_ingest_token_is_403(client: httpx.AsyncClient) -> None:
    """The aggregator's token opens only the pushes."""
    response = await client.get("/api/v1/settings", headers=INGEST)
    assert response.status_code == 403


async def test_admin_endpoint_with_admin_token_is_200(client: httpx.AsyncClient) -> None:
    """The admin token opens the admin endpoints."""
    response = await client.get("/api/v1/settings", headers=ADMIN)
    assert response.status_code == 200


async def test_errors_never_echo_the_presented_token(client: httpx.AsyncClient) -> None:
    """A rejected token is not repeated back to the caller."""
    response = await client.get("/api/v1/settings", headers={"Authorization": "Bearer s3cr3t-x"})
    assert response.status_code == 403
    assert "s3cr3t-x" not in response.text


async def test_unset_admin_token_locks_admin_endpoints(
    wm_database_url: str, tmp_path: Path
) -> None:
    """Without WM_ADMIN_TOKEN no token opens the admin endpoints (locked, not open)."""
    settings = wm_settings(wm_database_url, tmp_path).model_copy(update={"admin_token": None})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wm.test") as http:
            for headers in (ADMIN, INGEST, {"Authorization": "Bearer "}):
                response = await http.get("/api/v1/settings", headers=headers)
                assert response.status_code in (401, 403)


async def test_tokens_never_reach_the_log(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither a valid nor a rejected token appears in any log record of a request."""
    caplog.set_level(logging.DEBUG)
    await client.get("/api/v1/settings", headers=ADMIN)
    await client.get("/api/v1/settings", headers={"Authorization": "Bearer wrong-secret-1"})
    assert ADMIN_TOKEN not in caplog.text and "wrong-secret-1" not in caplog.text


async def test_a_push_whose_commit_fails_is_503_with_retry_after(
    client: httpx.AsyncClient, wm_database_url: str
) -> None:
    """A failed commit answers 503 + Retry-After (the aggregator resends), and stores nothing."""
    await reject_commits(wm_database_url, "aggregation_push")
    response = await push(client, push_body(entry("E1", sample(20.0, T0))))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "not_stored"
    listed = await client.get("/api/v1/aggregations", headers=ADMIN)
    assert listed.json()["items"] == []
