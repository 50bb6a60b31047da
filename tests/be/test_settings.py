"""Run-time settings: validated, persisted in the BE database, never showing secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.be.conftest import ADMIN_TOKEN, INTAKE_TOKEN, be_settings, reject_commits, running_be


def test_settings_show_connection_settings_but_no_secret(make_be):
    """GET shows URLs and timeouts; no token, password or client secret appears."""
    be = make_be(cherwell_password="cherwell-pass-123", sfyc_client_secret="sfyc-secret-456")
    response = be.client.get("/api/v1/settings")
    assert response.status_code == 200
    body = response.json()
    assert body["connection"]["cherwell_url"] == be.settings.cherwell_url
    assert body["connection"]["request_timeout_seconds"] == 5
    for secret in ("cherwell-pass-123", "sfyc-secret-456", INTAKE_TOKEN, ADMIN_TOKEN):
        assert secret not in response.text


def test_patch_changes_only_the_given_settings(make_be):
    """A PATCH of one setting leaves the others as they were."""
    be = make_be(processing_enabled=False, max_retries=3, max_tickets_per_request=100)
    response = be.patch_settings(max_tickets_per_request=25)
    assert response.status_code == 200
    body = response.json()
    assert (body["processing_enabled"], body["max_retries"], body["max_tickets_per_request"]) == (
        False,
        3,
        25,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_retries", -1),
        ("max_retries", 101),
        ("max_retries", "3"),
        ("max_tickets_per_request", 0),
        ("max_tickets_per_request", 201),
        ("processing_enabled", "yes"),
        ("processing_enabled", None),
        ("retries", 3),
    ],
)
def test_invalid_settings_are_rejected_naming_the_field(make_be, field, value):
    """An out-of-range, mistyped, null or unknown setting is a 422 naming it; nothing changes."""
    be = make_be(processing_enabled=False, max_retries=3)
    before = be.client.get("/api/v1/settings").json()
    response = be.patch_settings(**{field: value})
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]
    assert be.client.get("/api/v1/settings").json() == before


def test_settings_survive_a_restart(be_database_url, emulator):
    """Values set over REST are still in force after the BE restarts on the same database."""
    with running_be(be_settings(be_database_url, emulator)) as be:
        be.patch_settings(processing_enabled=False, max_retries=7, max_tickets_per_request=12)
    with running_be(be_settings(be_database_url, emulator, max_retries=1)) as restarted:
        body = restarted.client.get("/api/v1/settings").json()
    assert (body["processing_enabled"], body["max_retries"], body["max_tickets_per_request"]) == (
        False,
        7,
        12,
    )


def test_patch_whose_commit_fails_is_not_acknowledged(make_be, be_database_url):
    """When the settings change cannot commit, the operator gets an error and nothing changes."""
    be = make_be(max_retries=3)
    reject_commits(be_database_url, "be_setting")
    assert be.patch_settings(max_retries=7).status_code == 503
    assert be.client.get("/api/v1/settings").json()["max_retries"] == 3


@pytest.mark.parametrize(
    ("overrides", "kept_open"),
    [
        ({"workers": 16}, 68),
        ({"workers": 3, "workers_max": 3}, 7),
        ({"workers": 16, "db_pool_size": 5}, 5),
    ],
)
def test_the_connection_pool_keeps_one_connection_per_batch_in_flight_and_four_more(
    make_be, overrides, kept_open
):
    """Fewer connections kept than batches in flight, and those opened for a burst are
    closed and opened again all the time (each costing Postgres a server process and its
    catalogs read). Kept means at most: a connection opens only when wanted."""
    be = make_be(**overrides)
    assert be.app.state.engine.pool.size() == kept_open


def test_the_pool_has_room_for_every_worker_the_slots_may_admit(make_be):
    """The batches in flight grow up to BE_WORKERS_MAX: the pool's burst must let each of
    those workers have a connection, or they would queue for one (and time out)."""
    be = make_be(workers=2, workers_max=40)
    pool = be.app.state.engine.pool
    assert pool.size() + pool._max_overflow >= 40 + 4


def test_a_ceiling_below_the_starting_number_of_batches_in_flight_is_refused(emulator):
    with pytest.raises(ValidationError, match=r"BE_WORKERS_MAX \(4\) must be at least BE_WORKERS"):
        be_settings("postgresql://unused", emulator, workers=8, workers_max=4)


def test_a_starting_number_above_the_default_ceiling_raises_the_ceiling_with_it(emulator):
    settings = be_settings("postgresql://unused", emulator, workers=100)
    assert (settings.workers, settings.workers_max) == (100, 100)
