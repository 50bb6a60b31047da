"""The critical rule: thresholds vs severity, the window across pushes, no double counting."""

from __future__ import annotations

from datetime import timedelta

import httpx

from tests.wm.conftest import ADMIN
from tests.wm.support import T0, entry, push, push_body, sample, ticket_detail, tickets

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


async def set_rules(client: httpx.AsyncClient, **rules: object) -> None:
    response = await client.patch("/api/v1/settings", json=rules, headers=ADMIN)
    assert response.status_code == 200, response.text


async def critical_entries(
    client: httpx.AsyncClient, body: dict, kind: str = "snr-upstream"
) -> int:
    response = await push(client, body, kind)
    assert response.status_code == 200, response.text
    count: int = response.json()["critical_entries"]
    return count


async def test_snr_below_threshold_is_critical(client: httpx.AsyncClient) -> None:
    """Without severity, SNR 24.9 dB is critical (< 25)."""
    assert await critical_entries(client, push_body(entry("E1", sample(24.9, T0 - MIN)))) == 1


async def test_snr_at_threshold_is_not_critical(client: httpx.AsyncClient) -> None:
    """SNR exactly 25 dB is not critical (lower is worse, strict)."""
    assert await critical_entries(client, push_body(entry("E1", sample(25.0, T0 - MIN)))) == 0


async def test_utilisation_at_threshold_is_critical(client: httpx.AsyncClient) -> None:
    """US utilisation of exactly 70 % is critical (higher is worse, ≥)."""
    body = push_body(entry("SG1", sample(70.0, T0 - MIN)))
    assert await critical_entries(client, body, "us-service-group") == 1


async def test_ds_utilisation_below_its_threshold_is_not_critical(
    client: httpx.AsyncClient,
) -> None:
    """DS utilisation of 79 % is below the DS threshold of 80 %."""
    body = push_body(entry("SG1", sample(79.0, T0 - MIN)))
    assert await critical_entries(client, body, "ds-service-group") == 0


async def test_explicit_severity_wins_over_a_bad_value(client: httpx.AsyncClient) -> None:
    """severity "minor" on a value past the threshold is not critical."""
    body = push_body(entry("E1", sample(10.0, T0 - MIN, "minor")))
    assert await critical_entries(client, body) == 0


async def test_explicit_critical_wins_over_a_good_value(client: httpx.AsyncClient) -> None:
    """severity "critical" makes a sample critical whatever its value."""
    body = push_body(entry("E1", sample(40.0, T0 - MIN, "critical")))
    assert await critical_entries(client, body) == 1


async def test_sample_older_than_the_window_does_not_count(client: httpx.AsyncClient) -> None:
    """A critical sample 25 h before the push time is outside the 24 h window."""
    body = push_body(entry("E1", sample(20.0, T0 - 25 * HOUR)))
    assert await critical_entries(client, body) == 0


async def test_min_incidents_counts_samples_across_pushes(client: httpx.AsyncClient) -> None:
    """With min 2, one critical sample per incremental push makes it critical on the second."""
    await set_rules(client, min_critical_incidents=2)
    first = await critical_entries(client, push_body(entry("E1", sample(20.0, T0 - MIN))))
    second_body = push_body(entry("E1", sample(20.0, T0 + 14 * MIN)), at=T0 + 15 * MIN)
    second = await critical_entries(client, second_body)
    assert (first, second) == (0, 1)


async def test_repeated_sample_is_counted_once(client: httpx.AsyncClient) -> None:
    """With min 2, the same (entity, timestamp) pushed twice is still one incident."""
    await set_rules(client, min_critical_incidents=2)
    same = sample(20.0, T0 - MIN)
    await critical_entries(client, push_body(entry("E1", same)))
    again = await critical_entries(client, push_body(entry("E1", same), at=T0 + 15 * MIN))
    assert again == 0


async def test_samples_kept_from_earlier_pushes_stay_critical(client: httpx.AsyncClient) -> None:
    """An incremental push with only good samples keeps a ticket whose incident is in window."""
    await push(client, push_body(entry("E1", sample(20.0, T0 - MIN))))
    later = push_body(entry("E1", sample(35.0, T0 + 14 * MIN)), at=T0 + 15 * MIN)
    response = await push(client, later)
    assert response.json()["critical_entries"] == 1
    assert response.json()["tickets"]["unchanged"] == 1


async def test_changed_threshold_applies_to_the_next_push(client: httpx.AsyncClient) -> None:
    """A PATCHed threshold is in effect for the next push without restart."""
    body = push_body(entry("E1", sample(26.0, T0 - MIN)))
    assert await critical_entries(client, body) == 0
    await set_rules(client, thresholds={"snr-upstream": {"critical": 27, "major": 28}})
    again = push_body(entry("E1", sample(26.0, T0 + 5 * MIN)), at=T0 + 10 * MIN)
    assert await critical_entries(client, again) == 1


async def test_shorter_window_clears_an_old_incident(client: httpx.AsyncClient) -> None:
    """With a 1 h window an incident 2 h old no longer keeps the ticket open."""
    await push(client, push_body(entry("E1", sample(20.0, T0 - MIN))))
    await set_rules(client, window_hours=1)
    response = await push(client, push_body(entry("E1"), at=T0 + 2 * HOUR))
    assert response.json()["tickets"]["cleared"] == 1


async def test_ticket_reports_worst_value_and_count(client: httpx.AsyncClient) -> None:
    """The ticket JSON carries the count of critical samples and the worst (lowest) SNR."""
    body = push_body(entry("E1", sample(24.0, T0 - 3 * MIN), sample(22.5, T0 - 2 * MIN)))
    await push(client, body)
    [ticket] = await tickets(client)
    document = (await ticket_detail(client, ticket["id"]))["ticket"]
    assert document["critical_samples"] == 2
    assert document["worst_value"] == 22.5
    assert document["threshold"] == 25
