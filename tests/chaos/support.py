"""The chaos scenario, shared by tests/chaos (a few hundred elements) and bench/chaos.py.

A `ChaosSystem` is the e2e `System` (real processes) on a Postgres server of its own, so the
scenario can restart the database without touching the test session's server. Timings are
short, but `failover_after` is long: a BE killed here comes back before it would fail over
(failover itself is proven by tests/e2e).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.conftest import DatabaseFactory
from tests.e2e.conftest import FAST_BE, FAST_WM, System, snr_entries, snr_key, wait_for
from ticketing_common import embedded_pg

# Kept short so the run takes seconds, except the failover: a killed BE must come back first.
CHAOS_WM = {
    **FAST_WM,
    "WM_BACKEND_TIMEOUT_SECONDS": "5",
    "WM_FAILOVER_AFTER_SECONDS": "120",
    # A WM or database outage must not pause the BEs for the whole run: a longer lease.
    "WM_BACKEND_LEASE_SECONDS": "15",
    "WM_BACKEND_MAX_CALL_SECONDS": "30",
    # Every open and update push is a big one: answered once decided, written after.
    "WM_PUSH_CHUNK_REVISIONS": "40",
}
CHAOS_BE = {**FAST_BE, "BE_CIRCUIT_PROBE_INTERVAL_SECONDS": "1", "BE_MAX_RETRIES": "3"}
NOTE = re.compile(r"^\[(open|update|clear) r(\d+)\]")


class ChaosSystem(System):
    """The e2e system on its own Postgres, which `restart_database` stops and starts."""

    server: embedded_pg.EmbeddedPostgres
    data_dir: Path

    def restart_database(self, down_seconds: float = 2.0) -> None:
        embedded_pg.stop(self.server)
        time.sleep(down_seconds)
        self.server = embedded_pg.ensure_running(
            self.data_dir, port=self.server.port, durable=False
        )


@contextlib.contextmanager
def chaos_system(data_dir: Path) -> Iterator[ChaosSystem]:
    server = embedded_pg.ensure_running(data_dir, durable=False)
    factory = DatabaseFactory(server)
    system = ChaosSystem(factory.migrated, wm_overrides=CHAOS_WM, be_overrides=CHAOS_BE)
    system.server, system.data_dir = server, data_dir
    try:
        yield system
    finally:
        system.stop()
        embedded_pg.stop(system.server)


@dataclass
class Tally:
    elements: int = 0
    expected_revisions: int = 0
    lost: int = 0
    duplicate_incidents: int = 0
    duplicate_work_orders: int = 0
    unlinked: int = 0
    notes_out_of_order: int = 0
    duplicate_notes: int = 0
    in_error: int = 0
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        """Nothing lost, duplicated, unlinked, out of order or in Error."""
        return not (
            self.lost
            or self.duplicate_incidents
            or self.duplicate_work_orders
            or self.unlinked
            or self.notes_out_of_order
            or self.in_error
        )

    def summary(self) -> str:
        return (
            f"chaos: {self.elements} elements, {self.expected_revisions} revisions in "
            f"{self.seconds:.0f} s — lost {self.lost}, duplicate incidents "
            f"{self.duplicate_incidents}, duplicate work orders {self.duplicate_work_orders}, "
            f"unlinked {self.unlinked}, notes out of order {self.notes_out_of_order} "
            f"(duplicate notes {self.duplicate_notes}), in Error {self.in_error}"
        )


def run_scenario(system: ChaosSystem, *, elements: int, now: datetime) -> Tally:
    """Open every element, update it, clear half of it, each push under other faults."""
    started = time.monotonic()
    system.start(["be1", "be2"])
    ids = list(range(elements))
    # The clear push comes 24 h after the critical samples (4 minutes ahead: within the
    # clock skew), so every element it names has recovered.
    opened_at = now - timedelta(hours=23, minutes=59)
    updated_at = now - timedelta(hours=23, minutes=57)
    cleared_at = now + timedelta(minutes=4)
    # 1. Opens under 30 % 503s and lost answers from both platforms. The push answers once
    #    decided and the WM is SIGKILLed right after: its restart writes what is left.
    system.emulator.set_faults(
        platform="all", error_rate=0.3, status=503, retry_after=1, lose_response_next=10
    )
    answer = system.push_snr(snr_entries(ids, at=opened_at), at=opened_at)
    assert answer["revisions_to_write"] == elements, answer
    system.restart_wm()
    time.sleep(2)
    # 2. The database goes away for two seconds while the BEs work.
    system.restart_database()
    system.wait_until_finished(elements, timeout=120)
    # 3. Updates (new critical samples) with be1 SIGKILLed mid-delivery, back at once.
    system.emulator.set_faults(platform="all", error_rate=0.3, status=503, lose_response_next=10)
    system.push_snr(snr_entries(ids, at=updated_at, values=(20.0,)), at=updated_at)
    wait_for(lambda: system.be_counts("be1")["Received"] > 0, timeout=30, what="be1 working")
    system.bes["be1"].kill()
    system.start_be("be1")
    system.wait_until_finished(2 * elements, timeout=120)
    # 4. Half the elements recover; the WM is SIGKILLed mid-push and the aggregator resends.
    cleared = ids[: elements // 2]
    _push_with_wm_killed(system, cleared, at=cleared_at, padding=20_000)
    system.emulator.clear_faults()
    expected = 2 * elements + len(cleared)
    counts = system.wait_until_finished(expected, timeout=180)
    tally = _tally(system, ids, cleared, counts)
    tally.elements, tally.expected_revisions = elements, expected
    tally.seconds = time.monotonic() - started
    return tally


def _push_with_wm_killed(
    system: ChaosSystem, cleared: list[int], *, at: datetime, padding: int
) -> None:
    """A large push (healthy padding entries) killed 0.3 s in, then resent as is."""
    entries = snr_entries(cleared, at=at, values=(35.0,)) + [
        {"entity_id": f"CHAOS-PAD-{n}", "samples": [{"at": at.isoformat(), "value": 35.0}]}
        for n in range(padding)
    ]
    body = json.dumps(
        {
            "aggregation_id": f"chaos-clear-{at.isoformat()}",
            "generated_at": at.isoformat(),
            "entries": entries,
        }
    ).encode()
    attempt = threading.Thread(target=_push_ignoring_errors, args=(system, body), daemon=True)
    attempt.start()
    time.sleep(0.3)
    system.restart_wm()
    attempt.join(timeout=60)
    result = system.wm_client.push("snr-upstream", body)
    assert result["tickets"]["cleared"] in (0, len(cleared)), result


def _push_ignoring_errors(system: ChaosSystem, body: bytes) -> None:
    with contextlib.suppress(Exception):
        system.wm_client.push("snr-upstream", body)


def _tally(
    system: ChaosSystem, ids: list[int], cleared: list[int], counts: dict[str, Counter[str]]
) -> Tally:
    tally = Tally(in_error=sum(c["Error"] for c in counts.values()))
    incidents = system.incidents_by_key()
    orders: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for order in system.emulator.records("workorder"):
        orders[str(order.get("External_Key__c", "")).split("#")[0]].append(order)
    notes: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for journal in system.emulator.records("journal"):
        if match := NOTE.match(str(journal.get("Details", ""))):
            notes[str(journal.get("ParentRecID"))].append((match[1], int(match[2])))
    held = set().union(*(system.revisions_on(name) for name in system.bes))
    for i in ids:
        key = snr_key(i)
        expected = {(key, 1), (key, 2)} | ({(key, 3)} if i in cleared else set())
        tally.lost += len(expected - held)
        found, made = incidents.get(key, []), orders.get(key, [])
        tally.duplicate_incidents += max(len(found) - 1, 0)
        tally.duplicate_work_orders += max(len(made) - 1, 0)
        if len(found) != 1 or len(made) != 1:
            tally.lost += int(not found or not made)
            continue
        if found[0].get("TpcWorkOrderNumber") != made[0].get("WorkOrderNumber"):
            tally.unlinked += 1
        revisions = [n for _, n in notes.get(str(found[0].get("busObRecId")), [])]
        tally.duplicate_notes += len(revisions) - len(set(revisions))
        wanted = [2, 3] if i in cleared else [2]
        if sorted(set(revisions)) != wanted or revisions != sorted(revisions):
            tally.notes_out_of_order += 1
    return tally
