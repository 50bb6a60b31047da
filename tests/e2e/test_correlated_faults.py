"""End to end: with correlation on, one incident and one work order per node problem."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import System

pytestmark = pytest.mark.e2e

GROUP = "snr-service-group:Monterrey/MTY01/CCAP01/"


def node(name: str, channels: int, *, at: datetime, critical: int) -> list[dict[str, Any]]:
    """`channels` upstream channels of node `name`, the first `critical` of them critical."""
    return [
        {
            "entity_id": f"CCAP01:{name}:US-{i}",
            "market": "Monterrey",
            "hub": "MTY01",
            "ccap": "CCAP01",
            "service_group": name,
            "channel": f"US-{i}",
            "subscribers": 40,
            "samples": [{"at": at.isoformat(), "value": 21.0 if i < critical else 34.0}],
        }
        for i in range(channels)
    ]


def test_one_incident_and_one_work_order_per_node_problem(system: System, now: datetime) -> None:
    """Two nodes with 4 and 3 critical channels, one with 1: three incidents, three orders;
    a fifth channel failing later is a note on its node's incident, not a new one."""
    system.start(["be1"])
    system.wm_client.send("PATCH", "/api/v1/settings", json={"group_min_channels": 3})
    earlier = now - timedelta(minutes=15)
    first = node("N1", 6, at=earlier, critical=4) + node("N2", 3, at=earlier, critical=3)
    first += node("N3", 4, at=earlier, critical=1)
    result = system.push_snr(first, at=earlier)
    assert result["tickets"]["opened"] == 3
    system.wait_until_finished(3)
    later = node("N1", 6, at=now, critical=5)
    assert system.push_snr(later, at=now)["tickets"]["updated"] == 1
    system.wait_until_finished(4)

    keys = {f"{GROUP}N1", f"{GROUP}N2", "snr-upstream:CCAP01:N3:US-0"}
    incidents = system.incidents_by_key()
    assert {key: len(found) for key, found in incidents.items()} == dict.fromkeys(keys, 1)
    orders = Counter(
        wo["External_Key__c"].split("#", 1)[0] for wo in system.emulator.records("workorder")
    )
    assert orders == Counter(dict.fromkeys(keys, 1))
    [note] = system.emulator.records("journal")
    assert "CCAP01:N1:US-4" in note["Details"]
    assert note["ParentRecID"] == incidents[f"{GROUP}N1"][0]["busObRecId"]
