"""The background worker loop: read the settings, claim a batch, send it, repeat.

Several of these run per BE process (BE_WORKERS); the claim's SKIP LOCKED and lease keep
them, and other processes on the same database, from ever taking the same revision.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass

from be_service.pipeline import store
from be_service.pipeline.sender import BatchLimits, BatchSender, SenderContext
from be_service.services import settings as settings_service
from ticketing_common.db import session_scope
from ticketing_common.lease import keep_lease
from ticketing_common.waits import wait_for_event

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    """Shared by a process's workers (app.state.worker_stats): a poll count that keeps
    growing tells an idle pipeline (processing off, nothing to do) from a stalled one."""

    polls: int = 0


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
            fence=ctx.fence,
        )
    if not claimed:
        return False
    # A slow platform (latency, Retry-After, long timeouts) must not let the lease lapse
    # while this worker still sends the batch, or another worker would take it too.
    renew = functools.partial(_extend, ctx, worker=worker, ids=[c.id for c in claimed])
    async with keep_lease(renew, lease_seconds=ctx.lease_seconds, name=worker):
        await BatchSender(ctx, worker=worker, limits=limits, items=claimed).run()
    return True


async def _extend(ctx: SenderContext, *, worker: str, ids: list[int]) -> None:
    async for session in session_scope(ctx.sessionmaker):
        await store.extend_claims(session, worker=worker, ids=ids, lease_seconds=ctx.lease_seconds)


async def run_worker(
    ctx: SenderContext,
    *,
    worker: str,
    poll_interval: float,
    stop: asyncio.Event,
    stats: WorkerStats,
) -> None:
    """Loop until `stop` is set; idle or failing iterations wait `poll_interval`."""
    while not stop.is_set():
        try:
            busy = await work_once(ctx, worker=worker)
        except Exception:
            # The claimed revisions keep their lease and are taken again when it expires.
            log.exception("worker %s: batch failed", worker)
            busy = False
        stats.polls += 1
        if not busy:
            await wait_for_event(stop, poll_interval)
