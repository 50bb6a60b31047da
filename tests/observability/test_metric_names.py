"""Every metric the alert rules and the dashboard use is declared in the live /metrics.

A rule over a metric nobody exports never fires; this reads the HELP/TYPE lines a running
WM and a running BE serve over HTTP, and every name in deploy/ must be among them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from be_service.main import create_app as create_be_app
from tests.be.conftest import ADMIN_TOKEN as BE_ADMIN
from tests.be.conftest import Emulator, be_settings
from tests.be.conftest import emulator as emulator  # the fixture, shared with the BE tests
from tests.support.servers import serve_in_thread
from tests.wm.conftest import ADMIN_TOKEN as WM_ADMIN
from tests.wm.conftest import wm_settings
from wm_service.main import create_app as create_wm_app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\b((?:wm|be)_[a-z0-9_]+)")
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def used_metrics() -> set[str]:
    """Metric names in the alert expressions and the dashboard's queries."""
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    texts = [rule["expr"] for group in groups for rule in group["rules"]]
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "ticketing.json").read_text())
    texts += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return {name for text in texts for name in METRIC.findall(text)}


def declared(exposition: str) -> dict[str, str]:
    """name → type from the `# TYPE` lines."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", exposition, flags=re.MULTILINE))


@pytest.fixture
def live_metrics(
    wm_database_url: str, be_database_url: str, emulator: Emulator, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """The declared metrics of a WM and a BE, each served on a real port."""
    wm = create_wm_app(wm_settings(wm_database_url, tmp_path))
    be = create_be_app(be_settings(be_database_url, emulator))
    with serve_in_thread(wm) as wm_server, serve_in_thread(be) as be_server:
        types: dict[str, str] = {}
        for url, token in ((wm_server.url, WM_ADMIN), (be_server.url, BE_ADMIN)):
            response = httpx.get(
                f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            assert response.status_code == 200, response.text
            types.update(declared(response.text))
        yield types


def test_every_metric_in_the_rules_and_dashboard_is_exported(live_metrics: dict[str, str]) -> None:
    """Each name is declared as is, or is a histogram's _bucket/_sum/_count series."""
    missing = []
    for name in sorted(used_metrics()):
        base = next((name.removesuffix(s) for s in HISTOGRAM_SERIES if name.endswith(s)), name)
        if name not in live_metrics and live_metrics.get(base) != "histogram":
            missing.append(name)
    assert used_metrics() and missing == []
