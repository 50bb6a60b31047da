"""Platform outages wait instead of spending retries; the circuit sends one trial per interval.

Against the emulators over real HTTP, with short intervals (probe 1 s) so each case takes
seconds. Failures about the ticket still end in Error after max_retries + 1 attempts
(test_retries.py::test_error_after_max_retries_keeps_the_last_platform_message).
"""

from __future__ import annotations

import time
from typing import Any

from tests.be.conftest import BE, Emulator, be_settings, make_ticket, running_be, wait_until

PROBE_SECONDS = 1.0
FAST_CIRCUIT = {
    "circuit_failure_threshold": 3,
    "circuit_probe_interval_seconds": PROBE_SECONDS,
    "max_retries": 3,
    "backoff_base_seconds": 0.05,
    "backoff_cap_seconds": 0.2,
}


def circuit(be: BE, platform: str) -> dict[str, Any]:
    response = be.client.get("/api/v1/platforms")
    assert response.status_code == 200, response.text
    return next(p for p in response.json() if p["platform"] == platform)


def sfyc_requests(emulator: Emulator) -> int:
    return sum(n for key, n in emulator.stats()["requests"].items() if key.startswith("sfyc "))


def test_a_full_sfyc_outage_waits_and_then_flows_with_no_error(be_database_url, emulator):
    """SFyC answers 503 to everything: 0 Error, at most one SFyC call per probe interval
    while the circuit is open, and every ticket Completed once SFyC is back."""
    emulator.faults(platform="sfyc", error_rate=1, status=503, endpoint="composite")
    tickets = [make_ticket() for _ in range(20)]
    with running_be(be_settings(be_database_url, emulator, **FAST_CIRCUIT)) as be:
        be.intake(tickets)
        wait_until(lambda: circuit(be, "sfyc")["circuit"] == "open", what="SFyC circuit open")
        before, started = sfyc_requests(emulator), time.monotonic()
        time.sleep(4 * PROBE_SECONDS)
        during = sfyc_requests(emulator) - before
        elapsed = time.monotonic() - started
        assert during <= elapsed / PROBE_SECONDS + 1, f"{during} SFyC calls in {elapsed:.1f} s"
        assert be.counts().get("Error", 0) == 0
        assert "503" in (circuit(be, "sfyc")["last_failure"] or "")
        emulator.client.delete("/_emulator/faults")
        be.wait_all(20, timeout=30)
        assert circuit(be, "sfyc")["circuit"] == "closed"
        assert be.counts().get("Error", 0) == 0
    assert len(emulator.records("workorder")) == 20
    assert len(emulator.records("incident")) == 20


def test_a_30_percent_blip_of_503s_ends_nothing_in_error(be_database_url, seeded_emulator):
    """30 % of every platform's calls answer 503 (fixed seed): all Completed, none in Error."""
    seeded_emulator.faults(platform="all", error_rate=0.3, status=503)
    tickets = [make_ticket() for _ in range(30)]
    settings = be_settings(be_database_url, seeded_emulator, **FAST_CIRCUIT)
    with running_be(settings) as be:
        be.intake(tickets)
        be.wait_all(30, timeout=60)
        assert be.counts().get("Error", 0) == 0
    assert len(seeded_emulator.records("incident")) == 30
    assert len(seeded_emulator.records("workorder")) == 30


def test_request_limit_exceeded_opens_the_circuit(be_database_url, emulator):
    """SFyC's 403 REQUEST_LIMIT_EXCEEDED is about the platform: the circuit opens, no Error."""
    emulator.faults(platform="sfyc", error_rate=1, status=403, endpoint="composite")
    with running_be(be_settings(be_database_url, emulator, **FAST_CIRCUIT)) as be:
        be.intake([make_ticket() for _ in range(5)])
        wait_until(lambda: circuit(be, "sfyc")["circuit"] == "open", what="SFyC circuit open")
        assert "REQUEST_LIMIT_EXCEEDED" in (circuit(be, "sfyc")["last_failure"] or "")
        assert circuit(be, "cherwell")["circuit"] == "closed"
        assert be.counts().get("Error", 0) == 0
        emulator.client.delete("/_emulator/faults")
        be.wait_all(5, timeout=30)


def test_a_failing_login_opens_the_circuit_instead_of_failing_tickets(be_database_url, emulator):
    """Cherwell refusing every login (400 invalid_grant) is the platform's problem: no Error."""
    emulator.faults(platform="cherwell", error_rate=1, status=400, endpoint="token")
    with running_be(be_settings(be_database_url, emulator, **FAST_CIRCUIT)) as be:
        be.intake([make_ticket() for _ in range(3)])
        wait_until(lambda: circuit(be, "cherwell")["circuit"] == "open", what="Cherwell open")
        assert circuit(be, "cherwell")["logged_in"] is False
        assert be.counts().get("Error", 0) == 0
        emulator.client.delete("/_emulator/faults")
        be.wait_all(3, timeout=30)
        assert circuit(be, "cherwell")["logged_in"] is True
