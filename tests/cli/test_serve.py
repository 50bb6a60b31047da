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


def test_list_settings_and_checks_across_settings_are_named_as_written() -> None:
    """A list that is not JSON, an element of a list, and a check across two settings: each
    names the variable the operator set (an element by its index), none echoes a value."""
    not_json = _serve_with("be", {"BE_CHERWELL_OPEN_STATUSES": "New,Assigned"})
    element = _serve_with("be", {"BE_CHERWELL_OPEN_STATUSES": '["New", 7]'})
    across = _serve_with("be", {"BE_WORKERS": "10", "BE_WORKERS_MAX": "5"})
    assert [r.returncode for r in (not_json, element, across)] == [2, 2, 2]
    assert not_json.stderr.splitlines()[1].startswith(
        "  BE_CHERWELL_OPEN_STATUSES: not valid JSON ("
    )
    assert "New,Assigned" not in not_json.stderr
    assert element.stderr.splitlines()[1:] == [
        "  BE_CHERWELL_OPEN_STATUSES[1]: Input should be a valid string"
    ]
    assert across.stderr.splitlines()[1:] == [
        "  BE_WORKERS_MAX (5) must be at least BE_WORKERS (10): the batches in flight start"
        " at BE_WORKERS"
    ]


def test_an_error_that_is_not_about_settings_is_raised_as_it_is() -> None:
    """A model's ValidationError from a bug is not dressed up as a bad setting."""
    from pydantic import BaseModel, ValidationError

    from ticketing_cli.serve import settings_problems

    class Internal(BaseModel):
        count: int

    with pytest.raises(ValidationError) as raised:
        Internal.model_validate({"count": "many"})
    assert settings_problems(raised.value) is None
