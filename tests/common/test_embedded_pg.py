"""The embedded server's helpers: its system user created once even when several processes ask
at once, and free ports drawn in turn from a range when one is set (the test workers' ranges)."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import sys
import uuid

import pytest

from ticketing_common import embedded_pg

# Runs `_ensure_system_user` for the user named on the command line, in a process of its own.
ENSURE = (
    "import sys; from ticketing_common import embedded_pg; "
    "embedded_pg._ensure_system_user(sys.argv[1])"
)


# Only root creates the user (a server started by anyone else runs as them): CI runs as root.
@pytest.mark.skipif(os.geteuid() != 0, reason="only root creates the system user")
def test_processes_creating_the_system_user_at_once_all_succeed() -> None:
    """Four processes that each find the user missing and create it: all succeed, one user."""
    name = f"tkt_{uuid.uuid4().hex[:8]}"
    try:
        racers = [
            subprocess.Popen([sys.executable, "-c", ENSURE, name], stderr=subprocess.PIPE)
            for _ in range(4)
        ]
        failures = [r.stderr.read().decode() for r in racers if r.wait(timeout=60) != 0]
        assert failures == []
        assert pwd.getpwnam(name).pw_shell == "/usr/sbin/nologin"
        embedded_pg._ensure_system_user(name)  # and once more, now that it exists
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)
    with pytest.raises(KeyError):
        pwd.getpwnam(name)


def test_ports_come_from_the_range_in_turn_and_skip_a_taken_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a range set, ports are handed out in turn from it, none twice before it wraps,
    a port something is bound to is passed over, and a full range is an error."""
    low = _four_free_ports_in_a_row()
    monkeypatch.setenv(embedded_pg.PORT_RANGE_ENV, f"{low}-{low + 3}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", low + 2))
        ports = [embedded_pg.free_port() for _ in range(3)]
        assert sorted(ports) == [low, low + 1, low + 3]
        assert embedded_pg.free_port() == ports[0]  # wrapped: the first one again
        with socket.socket() as a, socket.socket() as b, socket.socket() as c:
            for sock, port in zip((a, b, c), ports, strict=True):
                sock.bind(("127.0.0.1", port))
            with pytest.raises(RuntimeError, match=embedded_pg.PORT_RANGE_ENV):
                embedded_pg.free_port()


def _four_free_ports_in_a_row() -> int:
    for low in range(40_000, 60_000, 4):
        try:
            for port in range(low, low + 4):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return low
    raise AssertionError("no four free ports in a row between 40000 and 60000")
