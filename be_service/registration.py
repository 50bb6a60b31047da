"""Self-registration on the WM (docs/contracts.md §5): PUT at start-up and every heartbeat,
with this BE's health (platforms, circuits, backlog), so the WM never has to ask; the answer
renews this BE's lease to call the platforms (pipeline/fence.py).

Failures to reach the WM are logged and retried at the next beat, never fatal: the BE keeps
taking tickets from whoever already knows it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from be_service.config import BESettings
from be_service.metrics import read_stored_state
from be_service.pipeline.fence import Fence, LeaseGrant
from be_service.pipeline.health import PlatformHealth
from be_service.reports import outbox_counts
from ticketing_common.db import session_scope
from ticketing_common.errors import log_retried_failure
from ticketing_common.outcome import BackendHealthReport, PlatformHealthReport
from ticketing_common.waits import wait_for_event

log = logging.getLogger(__name__)


HealthSource = Callable[[], Awaitable[BackendHealthReport | None]]


async def _no_health() -> None:
    return None


def health_source(
    sessionmaker: async_sessionmaker[AsyncSession],
    platforms: Mapping[str, PlatformHealth],
    *,
    processing_default: bool,
) -> HealthSource:
    """Reads this BE's health for the next heartbeat: each platform's circuit and last
    answers, processing on/off, revisions by status, the oldest Received age and its outcome
    reports waiting and refused (the console shows a BE whose reports do not get through)."""

    async def read() -> BackendHealthReport:
        async for session in session_scope(sessionmaker):
            state = await read_stored_state(session, processing_default=processing_default)
            reports = await outbox_counts(session)
        return BackendHealthReport(
            platforms=[
                PlatformHealthReport.model_validate(asdict(h.snapshot()))
                for h in platforms.values()
            ],
            processing_enabled=state.processing_enabled,
            revisions=state.by_status(),
            oldest_received_age_seconds=state.oldest_received_age,
            reports_waiting=reports.waiting,
            reports_refused=reports.refused,
        )

    return read


async def register_once(
    http: httpx.AsyncClient, settings: BESettings, *, health: HealthSource = _no_health
) -> LeaseGrant | None:
    """One idempotent upsert of this BE on the WM; the lease it granted, None when the WM
    did not accept it (or, an older WM, granted none)."""
    if not settings.wm_url:
        return None
    url = f"{settings.wm_url.rstrip('/')}/api/v1/backends/{settings.name}"
    headers = {}
    if settings.wm_token is not None:
        headers["Authorization"] = f"Bearer {settings.wm_token.get_secret_value()}"
    body: dict[str, object] = {
        "url": settings.public_url,
        "intake_token": settings.intake_token.get_secret_value(),
        "control_token": settings.control_token.get_secret_value(),
    }
    try:
        report = await health()
    except Exception:
        # The heartbeat matters more than its health: without a database, beat without it.
        log_retried_failure(log, "BE health not read for the heartbeat")
        report = None
    if report is not None:
        body["health"] = report.model_dump(mode="json")
    try:
        response = await http.put(url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        log.warning("registration on the WM failed: %s", type(exc).__name__)
        return None
    if response.status_code >= 300:
        log.warning("registration on the WM refused with HTTP %d", response.status_code)
        return None
    return _lease_grant(response)


def _lease_grant(response: httpx.Response) -> LeaseGrant | None:
    try:
        lease = response.json().get("lease")
        return LeaseGrant(
            generation=int(lease["generation"]),
            lease_seconds=float(lease["lease_seconds"]),
            max_call_seconds=float(lease["max_call_seconds"]),
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("the WM's heartbeat answer carries no lease: not renewed")
        return None


async def heartbeat(
    http: httpx.AsyncClient,
    settings: BESettings,
    *,
    stop: asyncio.Event,
    fence: Fence,
    renewed: Callable[[int], Awaitable[None]],
    health: HealthSource = _no_health,
) -> None:
    """Register now and then every `heartbeat_seconds` until `stop` is set; each answer
    renews the `fence`'s lease, then `renewed(generation)` gives up what moved away."""
    while not stop.is_set():
        try:
            sent_at = fence.clock()
            grant = await register_once(http, settings, health=health)
            if grant is not None:
                _renew(fence, grant, sent_at=sent_at, heartbeat_seconds=settings.heartbeat_seconds)
                await renewed(grant.generation)
        except Exception:
            log_retried_failure(log, "heartbeat failed; trying again at the next beat")
        await wait_for_event(stop, settings.heartbeat_seconds)


def _renew(fence: Fence, grant: LeaseGrant, *, sent_at: float, heartbeat_seconds: float) -> None:
    before = fence.generation
    if fence.renew(grant, sent_at=sent_at) and before is not None:
        log.warning(
            "the WM failed this BE over (generation %d → %d): revisions of the old "
            "generation are given up as Moved",
            before,
            grant.generation,
            extra={"generation": grant.generation},
        )
    if heartbeat_seconds * 2 > grant.lease_seconds:
        log.warning(
            "BE_HEARTBEAT_SECONDS (%g) is more than half the WM's lease (%g s): one late "
            "heartbeat pauses the platform calls",
            heartbeat_seconds,
            grant.lease_seconds,
        )
