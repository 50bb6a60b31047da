"""The BE's control token: what the WM may do for operators (pause, resume, re-drive)."""

from __future__ import annotations

from tests.be.conftest import be_settings, make_ticket, running_be

CONTROL_TOKEN = "be-control-test-token"
CONTROL = {"Authorization": f"Bearer {CONTROL_TOKEN}"}


def test_the_control_token_pauses_resumes_and_redrives_but_reads_nothing(be_database_url, emulator):
    """Pause and resume switch processing; a filtered re-drive takes only its kind; the
    same token gets 403 on the operator's read, settings and outcome-report endpoints."""
    settings = be_settings(be_database_url, emulator, control_token=CONTROL_TOKEN, max_retries=0)
    emulator.faults(platform="sfyc", item_error_rate=1, endpoint="composite")
    with running_be(settings) as be:
        be.intake([make_ticket(), make_ticket(kind="us-service-group")])
        be.wait_all(2, "Error")
        paused = be.client.post("/api/v1/processing/pause?actor=noc-1", headers=CONTROL)
        assert paused.status_code == 200 and paused.json()["processing_enabled"] is False
        assert be.client.post("/api/v1/processing/pause", headers=CONTROL).status_code == 422
        redrive = be.client.post(
            "/api/v1/tickets/retry-errors", params={"kind": "snr-upstream"}, headers=CONTROL
        )
        assert redrive.json() == {"retried": 1}
        assert be.counts()["Error"] == 1 and be.counts()["Received"] == 1
        emulator.client.delete("/_emulator/faults")
        resumed = be.client.post("/api/v1/processing/resume?actor=noc-1", headers=CONTROL)
        assert resumed.json()["processing_enabled"] is True
        be.wait_all(1)
        readings = ("/api/v1/tickets", "/api/v1/settings", "/api/v1/platforms")
        for path in (*readings, "/api/v1/outcome-reports"):
            assert be.client.get(path, headers=CONTROL).status_code == 403, path
        # Nor the outbox of reports to the WM: the operator's, with the admin token.
        for path in ("/retry", "/1/discard?actor=noc-1"):
            answer = be.client.post("/api/v1/outcome-reports" + path, headers=CONTROL)
            assert answer.status_code == 403, path
