"""A service process holds what serving needs, not the command line's libraries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import free_port
from ticketing_cli.stack import Child

# What `ticketing` itself uses (typer for its commands, rich for its tables) and what they
# pull in; httpx imports its own command line (click, rich, pygments) unless told not to.
CLI_ONLY = ("typer", "rich", "pygments")


@pytest.mark.parametrize("service", ["wm", "be", "emulators"])
def test_a_service_app_is_built_without_the_command_lines_libraries(service: str) -> None:
    """Built in a fresh interpreter the way the lean server builds it (with uvicorn and
    httpx loaded), no module of the command line's libraries is imported."""
    code = (
        "import sys\n"
        "from ticketing_cli import serve\n"
        "import httpx, uvicorn\n"
        f"serve.load_app({service!r})\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({CLI_ONLY!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr[-2000:]


def test_ticketing_hands_its_process_over_to_the_lean_server() -> None:
    """`ticketing emulators` serves from the same PID, its command line now the lean
    server's (a supervisor that tracks the PID keeps tracking the service)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ticketing_cli.main", "emulators", "--port", str(port)]
    )
    child = Child("emulators", f"http://127.0.0.1:{port}", process)
    try:
        child.wait_ready(timeout=60)
        command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert b"ticketing_cli.serve" in command_line
        assert command_line[command_line.index(b"ticketing_cli.serve") + 1] == b"emulators"
    finally:
        child.stop()


def _serve_with(service: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-P", "-m", "ticketing_cli.serve", service, "--port", str(free_port())],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_invalid_setting_is_named_by_its_variable_without_its_value() -> None:
    """A bad setting stops the service with exit 2 and one line naming the variable and
    why, not a traceback; the value is never echoed (it may be a token or a password)."""
    result = _serve_with("wm", {"WM_RETENTION_DAYS": "s3cret-looking-value"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "wm: invalid settings, not started:",
        "  WM_RETENTION_DAYS: Input should be a valid number, unable to parse string as a number",
    ]
    assert "s3cret-looking-value" not in result.stderr + result.stdout


def test_a_list_setting_that_is_not_json_is_refused_by_name() -> None:
    result = _serve_with("be", {"BE_CHERWELL_OPEN_STATUSES": "New,Assigned"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert 'field "open_statuses"' in result.stderr
    assert "list and object settings are JSON" in result.stderr
    assert "New,Assigned" not in result.stderr
