"""The step list: every platform step a revision goes through, in order, and who owns it.

A platform is one adapter module (client and steps), one emulator and its entries here; the
sender runs whatever this list holds (pipeline/sender.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from be_service.config import BESettings
from be_service.pipeline.steps import Step
from be_service.platforms import cherwell, sfyc

# One HTTP client each (lifespan), so one platform's slow calls never hold another's pool.
PLATFORMS = (cherwell.PLATFORM, sfyc.PLATFORM)


def build_steps(settings: BESettings, http: Mapping[str, httpx.AsyncClient]) -> tuple[Step, ...]:
    """check → note | create → work order → link, each owned by its platform's adapter."""
    incidents = cherwell.CherwellClient(
        http[cherwell.PLATFORM],
        cherwell.CherwellCredentials(
            base_url=settings.cherwell_url,
            client_id=settings.cherwell_client_id,
            username=settings.cherwell_username,
            password=settings.cherwell_password.get_secret_value(),
        ),
        settings.cherwell,
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
    )
    return (
        cherwell.Check(incidents),
        cherwell.Note(incidents),
        cherwell.Create(incidents),
        sfyc.WorkOrder(work_orders),
        cherwell.Link(incidents),
    )
