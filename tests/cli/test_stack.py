"""`ticketing up` refuses ports that are taken instead of talking to another instance."""

from __future__ import annotations

import socket

import pytest

from tests.support.servers import free_port
from ticketing_cli.stack import PortInUse, StackLayout, check_ports_free


def test_a_taken_port_is_named_with_its_service() -> None:
    """A listener on the WM's port stops `up` before anything starts, naming port and role."""
    layout = StackLayout.on_free_ports()
    with socket.socket() as other:
        other.bind(("127.0.0.1", layout.wm_port))
        other.listen()
        with pytest.raises(PortInUse, match=rf"{layout.wm_port} \(wm\)"):
            check_ports_free(layout)


def test_free_ports_pass() -> None:
    """Nothing listening: the check lets the stack start."""
    check_ports_free(
        StackLayout(wm_port=free_port(), be_ports=(free_port(),), emulator_port=free_port())
    )
