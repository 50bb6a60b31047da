"""GET /metrics on the WM: Prometheus text, its own token, gauges read from the database."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.wm.conftest import ADMIN, INGEST
from tests.wm.support import T0, entry, push, push_body, sample

METRICS_TOKEN = "metrics-test-token"
WITH_METRICS_TOKEN = {"metrics_token": SecretStr(METRICS_TOKEN)}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.parametrize("app_overrides", [WITH_METRICS_TOKEN], indirect=True)
async def test_metrics_need_the_metrics_or_admin_token(client: httpx.AsyncClient) -> None:
    """No token 401, the aggregator's token 403; Prometheus' token and the admin's work."""
    assert (await client.get("/metrics")).status_code == 401
    assert (await client.get("/metrics", headers=INGEST)).status_code == 403
    scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    for headers in (scrape, ADMIN):
        response = await client.get("/metrics", headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")


async def test_tickets_and_outbox_gauges_follow_the_database(client: httpx.AsyncClient) -> None:
    """After a push opening two tickets (no BE registered): 2 open, 2 pending unassigned."""
    body = push_body(entry("E1", sample(21.0, T0)), entry("E2", sample(20.0, T0)))
    assert (await push(client, body)).status_code == 200
    values = samples((await client.get("/metrics", headers=ADMIN)).text)
    assert values[("wm_tickets", (("kind", "snr-upstream"), ("state", "open")))] == 2
    assert values[("wm_outbox_pending_revisions", (("backend", ""),))] == 2
    assert values[("wm_open_tickets_by_stage", (("stage", "pending"),))] == 2
    assert values[("wm_outbox_oldest_pending_age_seconds", (("backend", ""),))] >= 0
    assert ("wm_last_push_timestamp_seconds", (("kind", "snr-upstream"),)) in values


async def test_pushes_are_counted_by_outcome_and_revisions_by_action(
    client: httpx.AsyncClient,
) -> None:
    """An applied push, its replay and a rejected one each count once; the open counts too."""
    body = push_body(entry("E1", sample(21.0, T0)))
    assert (await push(client, body)).status_code == 200
    assert (await push(client, body)).status_code == 200  # same aggregation_id: a replay
    bad = push_body(entry("", sample(21.0, T0)), aggregation_id="bad-1")
    assert (await push(client, bad)).status_code == 422
    values = samples((await client.get("/metrics", headers=ADMIN)).text)
    for outcome in ("applied", "replayed", "rejected"):
        key = ("wm_pushes_total", (("kind", "snr-upstream"), ("outcome", outcome)))
        assert values[key] == 1, outcome
    assert values[("wm_revisions_total", (("action", "open"), ("kind", "snr-upstream")))] == 1
    assert values[("wm_push_duration_seconds_count", (("kind", "snr-upstream"),))] == 3
