"""The alert rules and the dashboard: valid for Prometheus, unit-tested, each with a runbook.

promtool (Debian's prometheus package; `make test` installs it when missing) checks the
rules and runs their unit tests in deploy/prometheus/alerts.test.yml.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RUNBOOK = ROOT / "docs" / "runbook.md"


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: `make test` installs Debian's prometheus package")
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def alert_rules() -> list[dict[str, object]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_rules_are_valid() -> None:
    """`promtool check rules` accepts every expression and template."""
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_unit_tests_pass() -> None:
    """Each alert fires on its condition after its `for:` and not on the healthy series."""
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test() -> None:
    """No alert ships without a case in alerts.test.yml that expects it to fire."""
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {str(rule["alert"]) for rule in alert_rules()} <= fired


def test_prometheus_config_is_valid(tmp_path: Path) -> None:
    """`promtool check config` accepts the scrape configuration (token file stood in)."""
    token = tmp_path / "metrics-token"
    token.write_text("token")
    config = (
        (PROMETHEUS / "prometheus.yml").read_text().replace("/prometheus/metrics-token", str(token))
    )
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    result = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def _anchors(markdown: str) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_every_alert_links_an_existing_runbook_section(rule: dict[str, object]) -> None:
    """runbook_url points at a section of docs/runbook.md that exists."""
    annotations = rule["annotations"]
    assert isinstance(annotations, dict)
    path, _, anchor = str(annotations["runbook_url"]).partition("#")
    assert path == "docs/runbook.md"
    assert anchor in _anchors(RUNBOOK.read_text())
