"""`ticketing status` against a running WM and a BE registered on it by its heartbeat: the
BE's outcome reports, as its heartbeat tells the WM, in the BE's row."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import text
from typer.testing import CliRunner

from be_service.main import create_app as create_be_app
from tests.be.conftest import ADMIN_TOKEN as BE_ADMIN_TOKEN
from tests.be.conftest import Emulator, be_settings, wait_until
from tests.be.conftest import emulator as emulator  # the fixture, shared with the BE tests
from tests.support.servers import free_port, serve_in_thread
from tests.wm.conftest import ADMIN, BACKEND_TOKEN, wm_settings
from tests.wm.conftest import ADMIN_TOKEN as WM_ADMIN_TOKEN
from ticketing_cli.main import app
from ticketing_common.db import create_engine
from wm_service.main import create_app as create_wm_app


async def _set_aside_a_report(database_url: str) -> None:
    """A report refused as invalid, as the BE's reporter leaves it (be_service/reports.py)."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO outcome_report "
                    "(ticket_id, revision, seq, stage, body, created_at, refused_at, refusal) "
                    "VALUES (gen_random_uuid(), 1, 1, 'completed', '{}', now(), now(), 'bad')"
                )
            )
    finally:
        await engine.dispose()


def _heartbeat_health(wm_url: str) -> dict[str, Any]:
    backends = httpx.get(f"{wm_url}/api/v1/backends", headers=ADMIN).json()["backends"]
    return dict(backends[0]["health"] or {}) if backends else {}


def test_status_shows_each_be_with_its_outcome_reports(
    wm_database_url: str, be_database_url: str, emulator: Emulator, tmp_path: Path
) -> None:
    be_port = free_port()
    wm = create_wm_app(wm_settings(wm_database_url, tmp_path))
    with serve_in_thread(wm) as wm_server:
        settings = be_settings(
            be_database_url,
            emulator,
            name="be-cli",
            public_url=f"http://127.0.0.1:{be_port}",
            wm_url=wm_server.url,
            wm_token=SecretStr(BACKEND_TOKEN),
            heartbeat_seconds=0.2,
        )
        with serve_in_thread(create_be_app(settings), port=be_port):
            asyncio.run(_set_aside_a_report(be_database_url))
            wait_until(
                lambda: _heartbeat_health(wm_server.url).get("reports_refused") == 1,
                what="a heartbeat telling the set-aside report",
            )
            result = CliRunner().invoke(
                app,
                [
                    "status",
                    *("--wm-url", wm_server.url, "--wm-token", WM_ADMIN_TOKEN),
                    *("--be-token", BE_ADMIN_TOKEN, "--data-dir", str(tmp_path)),
                ],
                env={"COLUMNS": "250"},
            )
    assert result.exit_code == 0, result.output
    (row,) = [line for line in result.output.splitlines() if "be-cli" in line]
    assert "0 waiting, 1 REFUSED" in row
    assert "reports to the WM" in result.output
