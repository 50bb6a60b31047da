"""Run-time settings (processing on/off, max retries, max tickets per request) in the database.

Seeded from the environment the first time, then changed only over REST; the workers read
them before every batch, so a change applies to the next batch and survives restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service.config import BESettings
from be_service.models import BESetting
from be_service.schemas import ConnectionSettings, SettingsPublic, SettingsUpdate
from ticketing_common.db import redact_url
from ticketing_common.errors import ErrorDetail, ValidationFailed

_SEED = text(
    """
    INSERT INTO be_setting (id, processing_enabled, max_retries, max_tickets_per_request,
                            updated_at)
    VALUES (1, :processing_enabled, :max_retries, :max_tickets_per_request, now())
    ON CONFLICT (id) DO NOTHING
    """
)


async def ensure(session: AsyncSession, *, seed: BESettings) -> None:
    """Create the settings row from the environment's seed values unless it exists."""
    await (await session.connection()).execute(
        _SEED,
        {
            "processing_enabled": seed.processing_enabled,
            "max_retries": seed.max_retries,
            "max_tickets_per_request": seed.max_tickets_per_request,
        },
    )


@dataclass(frozen=True)
class BatchLimits:
    """The run-time settings in effect for one batch."""

    max_retries: int
    max_tickets_per_request: int


_FOR_BATCH = text(
    "SELECT processing_enabled, max_retries, max_tickets_per_request FROM be_setting WHERE id = 1"
)


async def for_batch(session: AsyncSession) -> BatchLimits | None:
    """What a worker reads before each batch; None while processing is off. The row's values
    only, without loading it into the session as get() does (identity map, refresh), which
    every batch and idle look paid."""
    enabled, max_retries, max_tickets = (
        await (await session.connection()).execute(_FOR_BATCH)
    ).one()
    return BatchLimits(max_retries, max_tickets) if enabled else None


async def get(session: AsyncSession) -> BESetting:
    row = await session.get(BESetting, 1, populate_existing=True)
    if row is None:
        raise RuntimeError("be_setting row missing: the app's start-up creates it")
    return row


async def update(session: AsyncSession, *, patch: SettingsUpdate) -> BESetting:
    explicit_nulls = [
        name for name in sorted(patch.model_fields_set) if getattr(patch, name) is None
    ]
    if explicit_nulls:
        raise ValidationFailed(
            "settings cannot be null",
            details=[ErrorDetail(name, "must not be null") for name in explicit_nulls],
        )
    row = await get(session)
    for name in patch.model_fields_set:
        setattr(row, name, getattr(patch, name))
    row.updated_at = datetime.now(UTC)
    session.add(row)
    await session.flush()
    return row


def public(row: BESetting, *, env: BESettings) -> SettingsPublic:
    return SettingsPublic(
        processing_enabled=row.processing_enabled,
        max_retries=row.max_retries,
        max_tickets_per_request=row.max_tickets_per_request,
        updated_at=row.updated_at,
        connection=ConnectionSettings(
            name=env.name,
            public_url=redact_url(env.public_url),
            cherwell_url=redact_url(env.cherwell_url),
            cherwell_client_id=env.cherwell_client_id,
            cherwell_username=env.cherwell_username,
            sfyc_url=redact_url(env.sfyc_url),
            sfyc_client_id=env.sfyc_client_id,
            sfyc_api_version=env.sfyc_api_version,
            sfyc_external_id_field=env.sfyc_external_id_field,
            connect_timeout_seconds=env.connect_timeout_seconds,
            request_timeout_seconds=env.request_timeout_seconds,
            bypass_proxy=env.bypass_proxy,
            workers=env.workers,
            workers_max=env.workers_max,
            wm_url=redact_url(env.wm_url) if env.wm_url else None,
        ),
    )
