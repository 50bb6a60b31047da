"""End to end over real processes: pushes become exactly one incident + one work order each."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest

from tests.e2e.conftest import System, snr_entries, snr_key, wait_for

pytestmark = pytest.mark.e2e


def _assert_exactly_once_and_linked(system: System, keys: set[str]) -> None:
    incidents = system.incidents_by_key()
    assert {k: len(v) for k, v in incidents.items() if k in keys} == dict.fromkeys(keys, 1)
    work_orders = Counter(
        wo["External_Key__c"].split("#", 1)[0] for wo in system.emulator.records("workorder")
    )
    assert {k: work_orders[k] for k in keys} == dict.fromkeys(keys, 1)
    orders_by_incident = {
        wo["Cherwell_Incident__c"]: wo for wo in system.emulator.records("workorder")
    }
    for key in keys:
        incident = incidents[key][0]
        order = orders_by_incident[incident["busObPublicId"]]
        assert incident["TpcWorkOrderNumber"] == order["WorkOrderNumber"]


def _assert_wm_shows_completed_with_the_platform_numbers(system: System, keys: set[str]) -> None:
    """The BEs' outcome reports reach the WM: every ticket `completed`, with the incident
    and work-order numbers the platforms hold."""

    def shown() -> dict[str, dict]:
        items = system.wm_client.get("/api/v1/tickets", limit=500)["items"]
        return {t["dedup_key"]: t for t in items if t["dedup_key"] in keys}

    wait_for(
        lambda: (
            {t["stage"] for t in shown().values()} == {"completed"} and len(shown()) == len(keys)
        ),
        timeout=30,
        what="every ticket completed on the WM",
    )
    incidents = system.incidents_by_key()
    orders = {wo["Cherwell_Incident__c"]: wo for wo in system.emulator.records("workorder")}
    for key, ticket in shown().items():
        incident = incidents[key][0]
        assert ticket["incident_public_id"] == incident["busObPublicId"]
        assert ticket["work_order_number"] == orders[incident["busObPublicId"]]["WorkOrderNumber"]
        assert ticket["backend"] in system.bes and ticket["last_error"] is None
    [sample] = system.wm_client.get("/api/v1/tickets", incident=incident["busObPublicId"])["items"]
    assert sample["dedup_key"] == key


def test_push_makes_one_incident_and_one_linked_work_order_per_critical_entry(
    system: System, now: datetime
) -> None:
    """12 critical + 8 healthy channels → 12 incidents, 12 work orders, linked both ways."""
    system.start(["be1", "be2"])
    entries = snr_entries(list(range(12)), at=now) + snr_entries(
        list(range(100, 108)), at=now, values=(35.0,)
    )
    result = system.push_snr(entries, at=now)
    assert result["critical_entries"] == 12
    counts = system.wait_until_finished(12)
    assert sum(c["Completed"] for c in counts.values()) == 12
    assert all(c["Completed"] > 0 for c in counts.values()), "both BEs take a share"
    _assert_exactly_once_and_linked(system, {snr_key(i) for i in range(12)})
    _assert_wm_shows_completed_with_the_platform_numbers(system, {snr_key(i) for i in range(12)})


def test_new_critical_samples_add_notes_and_no_new_incidents(system: System, now: datetime) -> None:
    """A second push with new critical samples notes the existing incidents."""
    system.start(["be1", "be2"])
    earlier = now - timedelta(minutes=30)
    system.push_snr(snr_entries(list(range(6)), at=earlier), at=earlier)
    system.wait_until_finished(6)
    result = system.push_snr(snr_entries(list(range(6)), at=now), at=now)
    assert result["tickets"]["updated"] == 6
    system.wait_until_finished(12)
    assert system.emulator.stats()["records"]["incident"] == 6
    assert system.emulator.stats()["records"]["journal"] == 6
    _assert_exactly_once_and_linked(system, {snr_key(i) for i in range(6)})


def test_recovered_entries_get_a_cleared_note(system: System, now: datetime) -> None:
    """Entries whose critical samples left the 24 h window are cleared with a note."""
    system.start(["be1"])
    # The critical samples are 24 h old at the second push (4 minutes ahead, within skew).
    then = now - timedelta(hours=23, minutes=57)
    system.push_snr(snr_entries(list(range(4)), at=then), at=then)
    system.wait_until_finished(4)
    later = now + timedelta(minutes=4)
    result = system.push_snr(snr_entries(list(range(4)), at=later, values=(34.0,)), at=later)
    assert result["tickets"]["cleared"] == 4
    system.wait_until_finished(8)
    notes = system.emulator.records("journal")
    assert len(notes) == 4
    assert all(note["Details"].startswith("[clear r2] Normalizado") for note in notes)
    assert system.emulator.stats()["records"]["incident"] == 4


def test_killed_be_fails_over_and_its_received_tickets_complete_after_restart(
    system: System, now: datetime
) -> None:
    """Kill one of two BEs mid-run: its share moves over; restarted, it finishes its own."""
    system.start(["be1", "be2"])
    system.emulator.set_faults(platform="all", latency_ms=300)
    before = now - timedelta(minutes=10)
    system.push_snr(snr_entries(list(range(40)), at=before), at=before)
    wait_for(
        lambda: sum(system.be_counts("be2").values()) > 0,
        timeout=30,
        what="be2 to receive part of the first push",
    )
    system.bes["be2"].kill()

    system.push_snr(snr_entries(list(range(200, 240)), at=now), at=now)
    system.emulator.clear_faults()
    second = {snr_key(i) for i in range(200, 240)}
    # be2 is dead: the second push completes only if its share failed over to be1.
    wait_for(
        lambda: second <= set(system.incidents_by_key()),
        timeout=60,
        what="the second push on the platforms without be2",
    )

    system.start_be("be2")
    system.wait_until_finished(80, timeout=90)
    _assert_exactly_once_and_linked(system, {snr_key(i) for i in range(40)} | second)


def test_third_be_takes_about_a_third_of_new_keys_and_existing_keys_stay(
    system: System, now: datetime
) -> None:
    """After a third BE registers, ~1/3 of new keys go to it; known keys keep their BE."""
    system.start(["be1", "be2"])
    earlier = now - timedelta(minutes=5)
    system.push_snr(snr_entries(list(range(150)), at=earlier), at=earlier)
    system.wait_until_finished(150)
    system.start_be("be3")
    system.wait_for_backends(3)
    # The same 150 elements again (new samples → revision 2) plus 150 new elements.
    system.push_snr(snr_entries(list(range(300)), at=now), at=now)
    system.wait_until_finished(450)

    home = {name: system.revisions_on(name) for name in ("be1", "be2", "be3")}
    first = {key: name for name, revs in home.items() for key, rev in revs if rev == 1}
    second = {key: name for name, revs in home.items() for key, rev in revs if rev == 2}
    old_keys = {snr_key(i) for i in range(150)}
    new_keys = {snr_key(i) for i in range(150, 300)}
    assert set(second) == old_keys and set(first) == old_keys | new_keys
    # Revisions of a known element follow it: a second BE on one element could race it.
    assert all(second[key] == first[key] for key in old_keys)
    on_be3 = sum(1 for key in new_keys if first[key] == "be3")
    assert 25 <= on_be3 <= 75


def test_wm_restarted_mid_delivery_loses_nothing(system: System, now: datetime) -> None:
    """SIGKILL the WM right after a push; restarted, it delivers every ticket exactly once."""
    system.start(["be1", "be2"])
    system.push_snr(snr_entries(list(range(120)), at=now), at=now)
    system.restart_wm()
    system.wait_for_backends(2)
    system.wait_until_finished(120, timeout=90)
    _assert_exactly_once_and_linked(system, {snr_key(i) for i in range(120)})
