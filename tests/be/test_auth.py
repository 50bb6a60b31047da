"""BE tokens: an unset token locks its endpoints instead of falling back to a known value."""

from __future__ import annotations

from be_service.config import BESettings
from tests.be.conftest import INTAKE_TOKEN, make_ticket, running_be


def test_unset_admin_token_locks_the_operator_api(be_database_url, emulator):
    """Without BE_ADMIN_TOKEN every bearer gets 403 on the operator API; intake still works."""
    settings = BESettings(
        database_url=be_database_url,
        intake_token=INTAKE_TOKEN,
        cherwell_url=f"{emulator.url}/CherwellAPI",
        sfyc_url=f"{emulator.url}/services",
        processing_enabled=False,
    )
    assert settings.unset_tokens() == ["BE_ADMIN_TOKEN", "BE_METRICS_TOKEN", "BE_CONTROL_TOKEN"]
    with running_be(settings) as be:
        for guess in ("dev-only-change-me-admin", "admin"):
            response = be.client.get(
                "/api/v1/settings", headers={"Authorization": f"Bearer {guess}"}
            )
            assert response.status_code in (401, 403)
        assert be.intake([make_ticket()]).status_code == 200
