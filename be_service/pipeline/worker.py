"""The background worker loop: read the settings, claim a batch, send it, repeat.

Several of these run per BE process (BE_WORKERS); the claim's SKIP LOCKED and lease keep
them, and other processes on the same database, from ever taking the same revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from be_service.pipeline import store
from be_service.pipeline.sender import BatchLimits, BatchSender, SenderContext
from be_service.services import settings as settings_service
from ticketing_common.db import session_scope

log = logging.getLogger(__name__)


async def work_once(ctx: SenderContext, *, worker: str) -> bool:
    """Claim and send one batch; False when there was nothing to do (or processing is off)."""
    async for session in session_scope(ctx.sessionmaker):
        current = await settings_service.get(session)
        if not current.processing_enabled:
            return False
        limits = BatchLimits(
            max_retries=current.max_retries,
            max_tickets_per_request=current.max_tickets_per_request,
        )
        claimed = await store.claim_batch(
            session,
            worker=worker,
            limit=limits.max_tickets_per_request,
            lease_seconds=ctx.lease_seconds,
        )
    if not claimed:
        return False
    await BatchSender(ctx, worker=worker, limits=limits, claimed=claimed).run()
    return True


async def run_worker(
    ctx: SenderContext, *, worker: str, poll_interval: float, stop: asyncio.Event
) -> None:
    """Loop until `stop` is set; idle or failing iterations wait `poll_interval`."""
    while not stop.is_set():
        try:
            busy = await work_once(ctx, worker=worker)
        except Exception:
            # The claimed revisions keep their lease and are taken again when it expires.
            log.exception("worker %s: batch failed", worker)
            busy = False
        if not busy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll_interval)
