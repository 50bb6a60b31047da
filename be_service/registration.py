"""Self-registration on the WM (docs/contracts.md §5): PUT at start-up and every heartbeat.

Failures to reach the WM are logged and retried at the next beat, never fatal: the BE keeps
taking tickets from whoever already knows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

from be_service.config import BESettings

log = logging.getLogger(__name__)


async def register_once(http: httpx.AsyncClient, settings: BESettings) -> bool:
    """One idempotent upsert of this BE on the WM; True when the WM accepted it."""
    if not settings.wm_url:
        return False
    url = f"{settings.wm_url.rstrip('/')}/api/v1/backends/{settings.name}"
    headers = {}
    if settings.wm_token is not None:
        headers["Authorization"] = f"Bearer {settings.wm_token.get_secret_value()}"
    body = {"url": settings.public_url, "intake_token": settings.intake_token.get_secret_value()}
    try:
        response = await http.put(url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        log.warning("registration on the WM failed: %s", type(exc).__name__)
        return False
    if response.status_code >= 300:
        log.warning("registration on the WM refused with HTTP %d", response.status_code)
        return False
    return True


async def heartbeat(http: httpx.AsyncClient, settings: BESettings, *, stop: asyncio.Event) -> None:
    """Register now and then every `heartbeat_seconds` until `stop` is set."""
    while not stop.is_set():
        try:
            await register_once(http, settings)
        except Exception:
            log.exception("registration on the WM failed unexpectedly")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.heartbeat_seconds)
