"""The step list: every platform step a revision goes through, in order, and who owns it.

A platform is one adapter module (client and steps), one emulator and its entries here; the
sender runs whatever this list holds (pipeline/sender.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from be_service.config import BESettings
from be_service.metrics import BEMetrics
from be_service.pipeline.health import PlatformHealth
from be_service.pipeline.steps import Step
from be_service.platforms import cherwell, sfyc
from be_service.platforms.watch import PlatformWatch

# One HTTP client each (lifespan), so one platform's slow calls never hold another's pool.
PLATFORMS = (cherwell.PLATFORM, sfyc.PLATFORM)


def build_health(settings: BESettings) -> dict[str, PlatformHealth]:
    """One health and circuit per platform, shared by the process's workers."""
    return {
        platform: PlatformHealth(
            platform,
            failure_threshold=settings.circuit_failure_threshold,
            probe_interval=settings.circuit_probe_interval_seconds,
            retry_after_cap=settings.retry_after_cap_seconds,
        )
        for platform in PLATFORMS
    }


def build_steps(
    settings: BESettings,
    http: Mapping[str, httpx.AsyncClient],
    health: Mapping[str, PlatformHealth] | None = None,
    metrics: BEMetrics | None = None,
) -> tuple[Step, ...]:
    """check → note | create → work order → link, each owned by its platform's adapter."""
    health = health or build_health(settings)
    metrics = metrics or BEMetrics()
    incidents = cherwell.CherwellClient(
        http[cherwell.PLATFORM],
        cherwell.CherwellCredentials(
            base_url=settings.cherwell_url,
            client_id=settings.cherwell_client_id,
            username=settings.cherwell_username,
            password=settings.cherwell_password.get_secret_value(),
        ),
        settings.cherwell,
        PlatformWatch(health[cherwell.PLATFORM], metrics),
    )
    work_orders = sfyc.SfycClient(
        http[sfyc.PLATFORM],
        sfyc.SfycCredentials(
            base_url=settings.sfyc_url,
            client_id=settings.sfyc_client_id,
            client_secret=settings.sfyc_client_secret.get_secret_value(),
            api_version=settings.sfyc_api_version,
            external_id_field=settings.sfyc_external_id_field,
        ),
        PlatformWatch(health[sfyc.PLATFORM], metrics),
    )
    return (
        cherwell.Check(incidents),
        cherwell.Note(incidents),
        cherwell.Create(incidents),
        sfyc.WorkOrder(work_orders),
        cherwell.Link(incidents),
    )
