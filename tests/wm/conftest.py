"""WM test fixtures: the app on a fresh migrated database, driven in-process with httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from wm_service.config import WMSettings
from wm_service.main import create_app

INGEST_TOKEN = "ingest-test-token"
ADMIN_TOKEN = "admin-test-token"
INGEST = {"Authorization": f"Bearer {INGEST_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BACKEND_TOKEN = "backend-test-token"
BACKEND = {"Authorization": f"Bearer {BACKEND_TOKEN}"}


def wm_settings(database_url: str, data_dir: Path, **overrides: Any) -> WMSettings:
    return WMSettings(
        database_url=SecretStr(database_url),
        data_dir=data_dir,
        ingest_token=SecretStr(INGEST_TOKEN),
        admin_token=SecretStr(ADMIN_TOKEN),
        backend_token=SecretStr(BACKEND_TOKEN),
        **overrides,
    )


@pytest.fixture
def app_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """WMSettings overrides for one test (parametrize with indirect=True)."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    return overrides


@pytest.fixture
def app(wm_database_url: str, tmp_path: Path, app_overrides: dict[str, Any]) -> FastAPI:
    return create_app(wm_settings(wm_database_url, tmp_path, **app_overrides))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the app in-process, inside the app's lifespan."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wm.test") as http:
            yield http
