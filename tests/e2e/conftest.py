"""The whole system as real processes for end-to-end tests: emulators, WM and BEs over HTTP.

Each test gets its own processes on free ports and its own databases on the session's
embedded Postgres; timings (heartbeat, failover, backoff) are shortened so that failover and
recovery happen within seconds. Every process is stopped by PID at the end of the test.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.servers import ServiceProcess, free_port, launch_service
from tests.support.tcp_proxy import TcpProxy
from ticketing_cli.client import BEClient, EmulatorClient, WMClient
from ticketing_cli.tour import be_status_counts

WM_ADMIN = "e2e-wm-admin"
WM_INGEST = "e2e-wm-ingest"
WM_BACKEND = "e2e-wm-backend"
BE_ADMIN = "e2e-be-admin"
BE_INTAKE = "e2e-be-intake"
BE_CONTROL = "e2e-be-control"

FAST_WM = {
    "WM_BACKEND_TIMEOUT_SECONDS": "1.5",
    "WM_FAILOVER_AFTER_SECONDS": "3",
    # Fencing: a BE calls the platforms at most 1 s after its last heartbeat answer, each
    # call at most 1.5 s, so failing it over after 3 s of silence is safe (WMSettings).
    "WM_BACKEND_LEASE_SECONDS": "1",
    "WM_BACKEND_MAX_CALL_SECONDS": "1.5",
    "WM_BACKEND_PROBE_INTERVAL_SECONDS": "0.3",
    "WM_BACKEND_PROBE_TIMEOUT_SECONDS": "1",
    "WM_DELIVERY_BACKOFF_BASE_SECONDS": "0.2",
    "WM_DELIVERY_BACKOFF_CAP_SECONDS": "0.5",
    "WM_DELIVERY_REQUEST_TIMEOUT_SECONDS": "3",
}
FAST_BE = {
    "BE_HEARTBEAT_SECONDS": "0.3",
    "BE_BACKOFF_BASE_SECONDS": "0.05",
    "BE_BACKOFF_CAP_SECONDS": "0.2",
    "BE_CLAIM_LEASE_SECONDS": "2",
}


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `predicate` until true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def snr_key(i: int) -> str:
    return f"snr-upstream:E2E-CCAP01:US-{i}"


def snr_entries(
    ids: list[int], *, at: datetime, values: tuple[float, ...] = (21.0,)
) -> list[dict[str, Any]]:
    """SNR channels `E2E-CCAP01:US-<i>`, one sample per value, 5 minutes apart, ending at `at`."""
    return [
        {
            "entity_id": f"E2E-CCAP01:US-{i}",
            "market": "Monterrey",
            "hub": "MTY01",
            "ccap": "CCAP01",
            "service_group": f"N{i:04d}",
            "channel": f"US-{i}",
            "subscribers": 40,
            "samples": [
                {"at": (at - timedelta(minutes=5 * (len(values) - 1 - n))).isoformat(), "value": v}
                for n, v in enumerate(values)
            ],
        }
        for i in ids
    ]


@dataclass
class System:
    make_database: Callable[[str], str]
    emulators: ServiceProcess | None = None
    wm: ServiceProcess | None = None
    wm_env: dict[str, str] = field(default_factory=dict)
    bes: dict[str, ServiceProcess] = field(default_factory=dict)
    be_envs: dict[str, dict[str, str]] = field(default_factory=dict)
    be_ports: dict[str, int] = field(default_factory=dict)
    proxies: dict[str, tuple[TcpProxy, TcpProxy]] = field(default_factory=dict)
    pushes: int = 0
    # Settings a scenario changes on top of the fast test timings.
    wm_overrides: dict[str, str] = field(default_factory=dict)
    be_overrides: dict[str, str] = field(default_factory=dict)

    # --- processes -------------------------------------------------------------------------
    def start(self, be_names: list[str], *, wm_port: int | None = None) -> None:
        self.emulators = launch_service("emulators", {})
        wm_port = wm_port or free_port()
        self.wm_env = {
            "WM_DATABASE_URL": self.make_database("wm"),
            "WM_ADMIN_TOKEN": WM_ADMIN,
            "WM_INGEST_TOKEN": WM_INGEST,
            "WM_BACKEND_TOKEN": WM_BACKEND,
            **FAST_WM,
            **self.wm_overrides,
        }
        self.wm = launch_service("wm", self.wm_env, port=wm_port)
        for name in be_names:
            self.start_be(name, wait=False)
        for process in [self.emulators, self.wm, *self.bes.values()]:
            process.wait_ready()
        self.wait_for_backends(len(be_names))

    def start_be(
        self, name: str, *, wait: bool = True, partitionable: bool = False, **env: str
    ) -> ServiceProcess:
        """Start (or restart) BE `name`; the first start may add `env` settings. With
        `partitionable`, the WM and the BE talk through two loopback proxies (its intake,
        and its heartbeats and reports), which `partition` cuts and `heal` restores."""
        assert self.wm is not None and self.emulators is not None
        if name not in self.be_envs:
            port = free_port()
            self.be_ports[name] = port
            public_url, wm_url = f"http://127.0.0.1:{port}", self.wm.url
            if partitionable:
                inbound, outbound = TcpProxy(port), TcpProxy(_port_of(self.wm.url))
                self.proxies[name] = (inbound, outbound)
                public_url, wm_url = inbound.url, outbound.url
            self.be_envs[name] = {
                "BE_NAME": name,
                "BE_DATABASE_URL": self.make_database("be"),
                "BE_PUBLIC_URL": public_url,
                "BE_INTAKE_TOKEN": BE_INTAKE,
                "BE_ADMIN_TOKEN": BE_ADMIN,
                "BE_CONTROL_TOKEN": BE_CONTROL,
                "BE_WM_URL": wm_url,
                "BE_WM_TOKEN": WM_BACKEND,
                "BE_PLATFORM_URL": self.emulators.url,
                **FAST_BE,
                **self.be_overrides,
                **env,
            }
        self.bes[name] = launch_service("be", self.be_envs[name], port=self.be_ports[name])
        if wait:
            self.bes[name].wait_ready()
        return self.bes[name]

    def partition(self, name: str) -> None:
        """Cut BE `name` off from the WM both ways; it still reaches the platforms."""
        for proxy in self.proxies[name]:
            proxy.cut()

    def heal(self, name: str) -> None:
        for proxy in self.proxies[name]:
            proxy.restore()

    def set_processing(self, name: str, enabled: bool) -> None:
        """The BE's run-time processing switch, set directly on the BE (not through a proxy)."""
        response = httpx.patch(
            f"http://127.0.0.1:{self.be_ports[name]}/api/v1/settings",
            json={"processing_enabled": enabled},
            headers={"Authorization": f"Bearer {BE_ADMIN}"},
            timeout=10,
        )
        response.raise_for_status()

    def restart_wm(self) -> None:
        assert self.wm is not None
        self.wm.kill()
        port = _port_of(self.wm.url)
        self.wm = launch_service("wm", self.wm_env, port=port)
        self.wm.wait_ready()

    def stop(self) -> None:
        for process in [*self.bes.values(), self.wm, self.emulators]:
            if process is not None:
                process.stop()
        for proxies in self.proxies.values():
            for proxy in proxies:
                proxy.cut()

    # --- clients ---------------------------------------------------------------------------
    @property
    def wm_client(self) -> WMClient:
        assert self.wm is not None
        return WMClient(self.wm.url, WM_ADMIN, WM_INGEST)

    @property
    def emulator(self) -> EmulatorClient:
        assert self.emulators is not None
        return EmulatorClient(self.emulators.url)

    def be_client(self, name: str) -> BEClient:
        """BE `name`'s API on its own port: reachable even while it is partitioned."""
        return BEClient(f"http://127.0.0.1:{self.be_ports[name]}", BE_ADMIN)

    def wait_for_backends(self, count: int, timeout: float = 30) -> None:
        wait_for(
            lambda: sum(1 for b in self.wm_client.backends() if b.get("available")) >= count,
            timeout=timeout,
            what=f"{count} BEs available on the WM",
        )

    def push_snr(self, entries: list[dict[str, Any]], *, at: datetime) -> dict[str, Any]:
        self.pushes += 1
        body = {
            "aggregation_id": f"e2e-{self.pushes}-{at.isoformat()}",
            "generated_at": at.isoformat(),
            "entries": entries,
        }
        return self.wm_client.push("snr-upstream", json.dumps(body).encode())

    def be_counts(self, name: str) -> Counter[str]:
        try:
            return be_status_counts(self.be_client(name))
        except httpx.HTTPError:
            return Counter()

    def revisions_on(self, name: str, *, status: str | None = None) -> set[tuple[str, int]]:
        """(dedup_key, revision) of every ticket revision the BE `name` holds (in `status`)."""
        found: set[tuple[str, int]] = set()
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 200, **({"status": status} if status else {})}
            if cursor:
                params["cursor"] = cursor
            page = self.be_client(name).get("/api/v1/tickets", **params)
            found |= {(item["dedup_key"], item["revision"]) for item in page["items"]}
            cursor = page.get("next_cursor")
            if not cursor:
                return found

    def wait_until_finished(self, expected: int, *, timeout: float = 90) -> dict[str, Counter[str]]:
        """Until the BEs together hold `expected` revisions, all Completed, Error or Moved
        (given up after a failover: another BE holds them too)."""
        deadline = time.monotonic() + timeout
        counts: dict[str, Counter[str]] = {}
        while time.monotonic() < deadline:
            counts = {name: self.be_counts(name) for name in self.bes}
            total = sum(sum(c.values()) for c in counts.values())
            finished = sum(c["Completed"] + c["Error"] + c["Moved"] for c in counts.values())
            if total >= expected and finished == total:
                return counts
            time.sleep(0.3)
        raise AssertionError(f"not finished within {timeout} s: {counts}")

    def incidents_by_key(self) -> dict[str, list[dict[str, Any]]]:
        by_key: dict[str, list[dict[str, Any]]] = {}
        for record in self.emulator.records("incident"):
            by_key.setdefault(record.get("TpcCorrelationKey", ""), []).append(record)
        return by_key


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def system(make_database: Callable[[str], str]) -> Iterator[System]:
    running = System(make_database)
    try:
        yield running
    finally:
        running.stop()
