"""A service process holds what serving needs, not the command line's libraries."""

from __future__ import annotations

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
