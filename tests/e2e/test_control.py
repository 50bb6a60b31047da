"""Operators steer the BEs from the WM: re-drive an Error ticket where it lives, pause and
resume every BE in one call, each action recorded with who asked."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.e2e.conftest import WM_ADMIN, System, snr_entries, wait_for

pytestmark = pytest.mark.e2e


def _stage(system: System, entity: str) -> dict:
    [ticket] = system.wm_client.get("/api/v1/tickets", entity=entity)["items"]
    return ticket


def test_an_error_is_redriven_from_the_wm_and_completes(system: System, now: datetime) -> None:
    """SFyC refuses the work order (validation): the WM shows `error` with the reason; after
    the fix one WM call re-drives it on its BE and the WM shows it `completed`."""
    system.be_overrides = {"BE_MAX_RETRIES": "0"}
    system.start(["be1", "be2"])
    system.emulator.set_faults(platform="sfyc", item_error_rate=1, endpoint="composite")
    system.push_snr(snr_entries([1], at=now), at=now)
    entity = "E2E-CCAP01:US-1"
    wait_for(lambda: _stage(system, entity)["stage"] == "error", timeout=60, what="stage error")
    assert "Emulated validation failure" in (_stage(system, entity)["last_error"] or "")
    system.emulator.clear_faults()
    ticket_id = _stage(system, entity)["id"]
    result = system.wm_client.send(
        "POST", f"/api/v1/tickets/{ticket_id}/retry", json={"actor": "noc-ana"}
    )
    assert [a["retried"] for a in result["backends"].values()] == [1]
    wait_for(lambda: _stage(system, entity)["stage"] == "completed", timeout=60, what="done")
    assert len(system.emulator.records("workorder")) == 1


def test_pause_and_resume_every_be_in_one_call(system: System, now: datetime) -> None:
    """A paused BE records tickets but sends nothing; resume lets them flow; both recorded."""
    system.start(["be1", "be2"])
    paused = system.wm_client.send("POST", "/api/v1/control/pause", json={"actor": "noc-luis"})
    assert {name: a["ok"] for name, a in paused["backends"].items()} == {"be1": True, "be2": True}
    system.push_snr(snr_entries(list(range(6)), at=now), at=now)
    wait_for(
        lambda: sum(system.be_counts(n)["Received"] for n in ("be1", "be2")) == 6,
        timeout=30,
        what="6 revisions received while paused",
    )
    assert system.emulator.records("incident") == []
    system.wm_client.send("POST", "/api/v1/control/resume", json={"actor": "noc-luis"})
    system.wait_until_finished(6)
    actions = system.wm_client.get("/api/v1/control/actions")
    assert [(a["action"], a["actor"]) for a in actions[:2]] == [
        ("resume", "noc-luis"),
        ("pause", "noc-luis"),
    ]


def test_the_operator_cli_lists_errors_and_redrives_them(system: System, now: datetime) -> None:
    """`ticketing errors` shows the Error with its reason; `ticketing retry --by` re-drives
    every Error through the WM; `ticketing pause`/`resume` answer per BE."""
    from typer.testing import CliRunner

    from ticketing_cli.main import app

    system.be_overrides = {"BE_MAX_RETRIES": "0"}
    system.start(["be1"])
    system.emulator.set_faults(platform="sfyc", item_error_rate=1, endpoint="composite")
    system.push_snr(snr_entries([3], at=now), at=now)
    entity = "E2E-CCAP01:US-3"
    wait_for(lambda: _stage(system, entity)["stage"] == "error", timeout=60, what="stage error")
    assert system.wm is not None
    common = ["--wm-url", system.wm.url, "--token", WM_ADMIN]
    runner = CliRunner()
    listed = runner.invoke(app, ["errors", *common], env={"COLUMNS": "200"})
    assert (
        listed.exit_code == 0
        and entity in listed.output
        and "1 ticket(s) in error" in listed.output
    )
    system.emulator.clear_faults()
    redriven = runner.invoke(app, ["retry", "--by", "noc-eva", *common])
    assert redriven.exit_code == 0 and "be1: ok, 1 re-driven" in redriven.output
    wait_for(lambda: _stage(system, entity)["stage"] == "completed", timeout=60, what="done")
    paused = runner.invoke(app, ["pause", "--by", "noc-eva", *common])
    assert paused.exit_code == 0 and "be1: ok" in paused.output
    assert runner.invoke(app, ["resume", "--by", "noc-eva", *common]).exit_code == 0
