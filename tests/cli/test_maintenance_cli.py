"""`ticketing maintenance add|list|import|end` against a real WM (in-process, real socket)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.support.servers import serve_in_thread
from tests.wm.conftest import ADMIN, ADMIN_TOKEN, wm_settings
from ticketing_cli.main import app
from ticketing_cli.maintenance import local_instant
from wm_service.main import create_app

runner = CliRunner()


@pytest.fixture
def wm_url(wm_database_url: str, tmp_path: Path) -> Iterator[str]:
    with serve_in_thread(create_app(wm_settings(wm_database_url, tmp_path))) as server:
        yield server.url


def run(wm_url: str, *args: str) -> str:
    result = runner.invoke(
        app, ["maintenance", "--wm-url", wm_url, *args], env={"WM_ADMIN_TOKEN": ADMIN_TOKEN}
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_a_time_without_offset_is_read_in_the_window_zone() -> None:
    """23:00 in Mexico City is 23:00-06:00; a time with an offset is kept as given."""
    assert local_instant("2026-12-05T23:00", "America/Mexico_City") == "2026-12-05T23:00:00-06:00"
    assert local_instant("2026-12-05T05:00+00:00", "America/Mexico_City").endswith("+00:00")


def test_add_list_import_and_end(wm_url: str, tmp_path: Path) -> None:
    """An operator adds a nightly window, imports two more, lists them and ends one."""
    added = run(
        wm_url,
        "add",
        *("--hub", "MTY01", "--start", "2026-12-05T23:00", "--end", "2026-12-06T03:00"),
        *("--every", "daily", "--reason", "Ventana nocturna", "--change", "CHG7", "--by", "ana"),
    )
    assert "window 1 added (hub MTY01)" in added
    csv = tmp_path / "windows.csv"
    csv.write_text(
        "ccap,starts_at,ends_at,reason\n"
        "CCAP02,2026-12-07T01:00:00-06:00,2026-12-07T04:00:00-06:00,Actualización\n"
        "CCAP03,2026-12-08T01:00:00-06:00,2026-12-08T04:00:00-06:00,Actualización\n"
    )
    assert "2 windows added: 2, 3" in run(wm_url, "import", str(csv), "--by", "luis")
    listed = run(wm_url, "list")
    assert "FREQ=DAILY" in listed and "CCAP03" in listed and "luis" in listed
    assert "window 2 ended at" in run(wm_url, "end", "2", "--by", "eva")
    window = httpx.get(f"{wm_url}/api/v1/maintenance-windows/2", headers=ADMIN).json()
    assert (window["updated_by"], window["created_by"]) == ("eva", "luis")


def test_a_refused_window_is_one_line_and_exit_1(wm_url: str) -> None:
    """An end before the start: the WM's 422 message on one line, no traceback."""
    result = runner.invoke(
        app,
        [
            *("maintenance", "--wm-url", wm_url, "add", "--hub", "H"),
            *("--start", "2026-12-05T23:00", "--end", "2026-12-05T22:00"),
            *("--reason", "x", "--by", "ana"),
        ],
        env={"WM_ADMIN_TOKEN": ADMIN_TOKEN},
    )
    assert result.exit_code == 1
    assert "ends_at" in result.output and "Traceback" not in result.output
