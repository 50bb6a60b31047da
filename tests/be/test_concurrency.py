"""Several workers and processes on one database, and a BE killed mid-batch: every ticket
reaches the platforms exactly once."""

from __future__ import annotations

from collections import Counter

import httpx

from tests.be.conftest import (
    ADMIN_TOKEN,
    INTAKE_TOKEN,
    be_settings,
    make_ticket,
    running_be,
    wait_until,
)
from tests.support.servers import spawn_service


def _assert_exactly_once(emulator, tickets):
    keys = Counter(r["TpcCorrelationKey"] for r in emulator.records("incident"))
    assert keys == Counter(t["dedup_key"] for t in tickets)
    orders = Counter(r["External_Key__c"].split("#")[0] for r in emulator.records("workorder"))
    assert orders == Counter(t["dedup_key"] for t in tickets)


def test_two_bes_on_one_database_never_send_a_ticket_twice(make_database, emulator):
    """Two BE processes with three workers each share the work without a duplicate."""
    url = make_database("be")
    emulator.faults(platform="all", latency_ms=20)
    tickets = [make_ticket() for _ in range(120)]
    first = be_settings(url, emulator, name="be-a", workers=3, processing_enabled=False)
    second = be_settings(url, emulator, name="be-b", workers=3)
    with running_be(first) as a, running_be(second) as b:
        a.intake(tickets)
        a.patch_settings(processing_enabled=True, max_tickets_per_request=10)
        a.wait_all(120)
        saves = emulator.requests("savebusinessobjectbatch")
        details = [b.ticket(t["ticket_id"]) for t in tickets]
    _assert_exactly_once(emulator, tickets)
    # Nothing resent: every ticket went through each step once. Requests of at most 10, so
    # at least 12 creates and as many links; more when concurrent claims split the 120
    # unevenly (SKIP LOCKED: 40, 40, 37 and 3).
    for detail in details:
        operations = [x["operation"] for x in detail["revisions"][0]["attempts"]]
        assert operations == ["check", "create", "workorder", "link"]
    assert saves >= 24 and saves % 2 == 0


def test_a_lease_shorter_than_a_slow_batch_is_renewed_so_nothing_is_sent_twice(
    make_database, emulator
):
    """Platform calls outlast the claim lease; renewal keeps the other BE off the batch.

    The lease is 1.5 s (renewed every 0.5 s) under 2 s calls: with 0.5 s under 1 s calls, a
    full suite on two cores (both BEs, the emulator and this test share one process here)
    once delayed a renewal past the lease, and the other BE checked the batch again."""
    url = make_database("be")
    emulator.faults(platform="all", latency_ms=2000)
    tickets = [make_ticket() for _ in range(20)]
    lease = {"claim_lease_seconds": 1.5, "workers": 2}
    first = be_settings(url, emulator, name="be-a", processing_enabled=False, **lease)
    second = be_settings(url, emulator, name="be-b", **lease)
    with running_be(first) as a, running_be(second) as b:
        a.intake(tickets)
        a.patch_settings(processing_enabled=True, max_tickets_per_request=5)
        a.wait_all(20, timeout=60)
        details = [b.ticket(t["ticket_id"]) for t in tickets]
    _assert_exactly_once(emulator, tickets)
    for detail in details:
        operations = [x["operation"] for x in detail["revisions"][0]["attempts"]]
        assert operations == ["check", "create", "workorder", "link"]


def test_a_be_killed_mid_batch_completes_every_ticket_exactly_once(make_database, emulator):
    """SIGKILL while creates are in flight; the restarted BE finishes without duplicates."""
    url = make_database("be")
    emulator.faults(platform="cherwell", latency_ms=400, endpoint="savebusinessobjectbatch")
    env = {
        "BE_NAME": "be-crash",
        "BE_DATABASE_URL": url,
        "BE_INTAKE_TOKEN": INTAKE_TOKEN,
        "BE_ADMIN_TOKEN": ADMIN_TOKEN,
        "BE_CHERWELL_URL": f"{emulator.url}/CherwellAPI",
        "BE_SFYC_URL": f"{emulator.url}/services",
        "BE_BYPASS_PROXY": "true",
        "BE_WORKERS": "4",
        # Batches of 20 (four requests of 5): the first four hold 80 of the 200 when killed.
        "BE_MAX_TICKETS_PER_REQUEST": "5",
        "BE_POLL_INTERVAL_SECONDS": "0.05",
        "BE_BACKOFF_BASE_SECONDS": "0.05",
        "BE_BACKOFF_CAP_SECONDS": "0.2",
        "BE_CLAIM_LEASE_SECONDS": "2",
        "BE_LOG_LEVEL": "WARNING",
    }
    tickets = [make_ticket() for _ in range(200)]
    headers = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
    service = spawn_service("be", env)
    try:
        response = httpx.post(
            f"{service.url}/api/v1/tickets", json={"tickets": tickets}, headers=headers, timeout=30
        )
        assert response.status_code == 200, response.text
        wait_until(lambda: emulator.stats()["records"]["incident"] > 0, what="first incidents")
        service.kill()
    finally:
        service.stop()
    assert emulator.stats()["records"]["incident"] < 200
    restarted = spawn_service("be", env)
    try:
        with httpx.Client(
            base_url=restarted.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ) as client:
            wait_until(
                lambda: client.get("/api/v1/tickets").json()["counts"]["Completed"] == 200,
                timeout=90,
                what="all tickets Completed after the restart",
            )
    finally:
        restarted.stop()
    _assert_exactly_once(emulator, tickets)


def test_with_a_slow_platform_more_batches_go_in_flight_and_each_ticket_still_once(
    make_be, emulator
):
    """300 ms a call: one batch in flight at a time (four requests of 5 a step) completes
    ~13 tickets/s, so the BE tries more (up to BE_WORKERS_MAX, also the bound on calls in
    flight to each platform), keeps them because the rate rises, and every ticket still
    reaches each platform exactly once."""
    emulator.faults(platform="all", latency_ms=300)
    tickets = [make_ticket() for _ in range(240)]
    be = make_be(workers=1, workers_max=12, worker_adjust_seconds=0.3, processing_enabled=False)
    be.intake(tickets)
    be.patch_settings(processing_enabled=True, max_tickets_per_request=5)
    slots = be.app.state.batch_slots
    most = 1

    def done() -> bool:
        nonlocal most
        most = max(most, slots.limit)
        return be.counts()["Completed"] >= len(tickets)

    wait_until(done, timeout=90, what="240 tickets Completed")
    assert most >= 3  # 2 was kept, since 3 was tried
    _assert_exactly_once(emulator, tickets)
