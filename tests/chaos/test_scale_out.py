"""Scale-out: two WM replicas on one database, pushes to both, one killed mid-push.

Both replicas ingest (pushes of one kind are serialised by an advisory lock in the shared
database) and both distribute (outbox claims with SKIP LOCKED and leases). Whatever replica a
push lands on, and though one dies mid-push, each element ends with one ticket, one incident
and one work order, and no element ever has two open tickets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.e2e.conftest import WM_ADMIN, WM_INGEST, System, snr_entries, snr_key
from tests.e2e.conftest import system as system  # the fixture: real processes per test
from tests.support.servers import ServiceProcess, launch_service
from tests.support.tcp_proxy import TcpProxy
from ticketing_cli.client import WMClient
from ticketing_common.db import asyncpg_dsn
from ticketing_common.embedded_pg import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

SNR = list(range(60))
GROUPS = list(range(40))


def _group_entries(ids: list[int], *, at: datetime, value: float) -> list[dict[str, Any]]:
    return [
        {
            "entity_id": f"SCALE-CCAP01:N{i:04d}-US",
            "market": "Monterrey",
            "hub": "MTY01",
            "ccap": "CCAP01",
            "service_group": f"N{i:04d}",
            "subscribers": 120,
            "samples": [{"at": at.isoformat(), "value": value}],
        }
        for i in ids
    ]


def _body(name: str, at: datetime, entries: list[dict[str, Any]]) -> bytes:
    payload = {"aggregation_id": f"{name}-{at.isoformat()}", "generated_at": at.isoformat()}
    return json.dumps({**payload, "entries": entries}).encode()


@dataclass(frozen=True)
class Replicas:
    system: System  # its `wm` is the first replica
    second: ServiceProcess
    # The one address the BEs know the WM by (README: replicas behind a load balancer).
    balancer: TcpProxy


@pytest.fixture
def replicas(system: System) -> Iterator[Replicas]:
    """The e2e system plus a second WM process on the same database, the BEs reaching the
    WM through a balancer that forwards to the first replica."""
    first_port = free_port()
    balancer = TcpProxy(first_port)
    system.be_overrides["BE_WM_URL"] = balancer.url
    system.start(["be1", "be2"], wm_port=first_port)
    second = launch_service("wm", system.wm_env)
    second.wait_ready()
    try:
        yield Replicas(system, second, balancer)
    finally:
        second.stop()
        balancer.cut()


def _open_tickets_per_key(database_url: str) -> Counter[str]:
    async def query() -> Counter[str]:
        connection = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            rows = await connection.fetch("SELECT dedup_key FROM ticket WHERE state = 'open'")
        finally:
            await connection.close()
        return Counter(row["dedup_key"] for row in rows)

    return asyncio.run(query())


def test_two_replicas_one_killed_mid_push_duplicate_nothing(replicas: Replicas) -> None:
    """Pushes of two kinds land on two replicas at once; a third dies mid-push and is resent
    to the survivor: one incident and one work order per element, one open ticket each."""
    system, second = replicas.system, replicas.second
    first_client, second_client = system.wm_client, WMClient(second.url, WM_ADMIN, WM_INGEST)
    now = datetime.now(UTC).replace(microsecond=0)
    snr = _body("scale-snr", now, snr_entries(SNR, at=now))
    us = _body("scale-us", now, _group_entries(GROUPS, at=now, value=91.0))
    pushes = [
        threading.Thread(target=first_client.push, args=("snr-upstream", snr)),
        threading.Thread(target=second_client.push, args=("us-service-group", us)),
    ]
    for push in pushes:
        push.start()
    for push in pushes:
        push.join(timeout=60)
    # A big ds push (healthy padding) on the first replica, which is SIGKILLed 0.3 s in.
    later = now + timedelta(minutes=1)
    padding = [
        {"entity_id": f"SCALE-PAD-{n}", "samples": [{"at": later.isoformat(), "value": 10.0}]}
        for n in range(20_000)
    ]
    ds = _body("scale-ds", later, _group_entries(GROUPS, at=later, value=95.0) + padding)
    dying = threading.Thread(target=_push_quietly, args=(first_client, ds), daemon=True)
    dying.start()
    time.sleep(0.3)
    system.wm.kill()  # type: ignore[union-attr]
    # The balancer's health check takes the dead replica out: heartbeats and reports reach
    # the survivor (without it the BEs' leases lapse and both are fenced, with nowhere to go).
    replicas.balancer.target_port = urlsplit(second.url).port or 0
    dying.join(timeout=30)
    result = second_client.push("ds-service-group", ds)  # the aggregator resends
    assert result["critical_entries"] == len(GROUPS)
    expected = len(SNR) + 2 * len(GROUPS)
    system.wait_until_finished(expected, timeout=120)
    incidents = system.incidents_by_key()
    keys = {snr_key(i) for i in SNR} | {
        f"{kind}:SCALE-CCAP01:N{i:04d}-US"
        for kind in ("us-service-group", "ds-service-group")
        for i in GROUPS
    }
    assert {k: len(v) for k, v in incidents.items() if k in keys} == dict.fromkeys(keys, 1)
    orders = Counter(
        str(o["External_Key__c"]).split("#")[0] for o in system.emulator.records("workorder")
    )
    assert {k: orders[k] for k in keys} == dict.fromkeys(keys, 1)
    open_per_key = _open_tickets_per_key(system.wm_env["WM_DATABASE_URL"])
    assert set(open_per_key) == keys and max(open_per_key.values()) == 1


def _push_quietly(client: WMClient, body: bytes) -> None:
    with contextlib.suppress(Exception):
        client.push("ds-service-group", body)
