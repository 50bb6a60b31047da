"""GET /metrics on a BE: its own token, revisions by status, platform calls and circuits."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.be.conftest import INTAKE_TOKEN, be_settings, make_ticket, running_be

METRICS_TOKEN = "be-metrics-test-token"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_what_the_pipeline_did(be_database_url, emulator):
    """After one ticket completes: one Completed revision, Cherwell and SFyC calls counted
    by operation and status class, both circuits closed, processing on."""
    settings = be_settings(be_database_url, emulator, metrics_token=METRICS_TOKEN)
    with running_be(settings) as be:
        be.intake([make_ticket()])
        be.wait_all(1)
        assert be.client.get("/metrics", headers={"Authorization": ""}).status_code == 401
        intake = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
        assert be.client.get("/metrics", headers=intake).status_code == 403
        scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        response = be.client.get("/metrics", headers=scrape)
    assert response.status_code == 200
    values = samples(response.text)
    assert values[("be_revisions", (("status", "Completed"), ("step", "done")))] == 1
    create = (
        "be_platform_requests_total",
        (("operation", "create"), ("platform", "cherwell"), ("status_class", "2xx")),
    )
    assert values[create] == 1
    upsert = (
        "be_platform_requests_total",
        (("operation", "workorder"), ("platform", "sfyc"), ("status_class", "2xx")),
    )
    assert values[upsert] >= 1
    for platform in ("cherwell", "sfyc"):
        key = ("be_circuit_state", (("platform", platform), ("state", "closed")))
        assert values[key] == 1
    assert values[("be_processing_enabled", ())] == 1
    assert values[("be_attempts_total", (("operation", "create"), ("outcome", "ok")))] == 1
