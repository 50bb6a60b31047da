"""The background worker loop: read the settings, claim a batch, send it, repeat.

Several of these run per BE process (BE_WORKERS_MAX), as many at once as the batch slots
allow (pipeline/slots.py); the claim's SKIP LOCKED and lease keep them, and other processes
on the same database, from ever taking the same revision.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, field

from be_service.pipeline import store
from be_service.pipeline.sender import BatchSender, SenderContext
from be_service.pipeline.slots import BatchSlots, SlotsWindow
from be_service.services import settings as settings_service
from ticketing_common.db import session_scope
from ticketing_common.errors import log_retried_failure
from ticketing_common.lease import keep_lease
from ticketing_common.waits import Bell

log = logging.getLogger(__name__)

# A batch is up to this many requests' worth of revisions (max_tickets_per_request each),
# which each step sends at once (sender.py): the settings read, the claim and the records
# of a batch cost about the same for 400 revisions as for 100, and a batch takes no longer
# while the platforms answer (docs/performance.md, item 40).
REQUESTS_PER_CLAIM = 4


@dataclass
class WorkerStats:
    """Shared by a process's workers (app.state.worker_stats): a poll count that keeps
    growing tells an idle pipeline (processing off, nothing to do) from a stalled one."""

    polls: int = 0


@dataclass
class WorkerWakeups:
    """What an idle process's workers wait on (app.state.worker_wakeups).

    `bell` rings when revisions may have become claimable (an intake, a retry, processing
    resumed, a settings change): one idle worker looks, and rings again for another if it
    claimed a full batch. Between rings one worker a poll interval looks, not each of them:
    an idle BE made 16 empty claims a second with 8 workers.
    """

    bell: Bell = field(default_factory=Bell)
    last_look: float = float("-inf")

    def wait_for_turn(self, poll_interval: float) -> float:
        """0 when this idle worker should look now (nobody looked for a poll interval, and
        it is its turn now); else how long until the next turn is due."""
        now = asyncio.get_running_loop().time()
        due = self.last_look + poll_interval - now
        if due > 0:
            return due
        self.last_look = now
        return 0.0


async def work_once(
    ctx: SenderContext,
    *,
    worker: str,
    bell: Bell | None = None,
    window: SlotsWindow | None = None,
) -> bool:
    """Claim and send one batch; False when there was nothing to do (or processing is off).
    A full batch rings `bell`: there is likely more, for another idle worker. `window`
    counts the batch for the slots controller (pipeline/slots.py)."""
    started = time.monotonic()
    async for session in session_scope(ctx.sessionmaker):
        limits = await settings_service.for_batch(session)
        if limits is None:
            if window is not None:
                window.short_claims += 1  # processing is off: no backlog to size for
            return False
        limit = limits.max_tickets_per_request * REQUESTS_PER_CLAIM
        claimed = await store.claim_batch(
            session, worker=worker, limit=limit, lease_seconds=ctx.lease_seconds, fence=ctx.fence
        )
    if limits is None:  # (returned above; mypy cannot see it here)
        return False
    full = len(claimed) >= limit
    if window is not None and not full:
        window.short_claims += 1
    if not claimed:
        return False
    if bell is not None and full:
        bell.ring()
    # A slow platform (latency, Retry-After, long timeouts) must not let the lease lapse
    # while this worker still sends the batch, or another worker would take it too.
    renew = functools.partial(_extend, ctx, worker=worker, ids=[c.id for c in claimed])
    async with keep_lease(renew, lease_seconds=ctx.lease_seconds, name=worker) as writing:
        sender = BatchSender(ctx, worker=worker, limits=limits, items=claimed, writing=writing)
        await sender.run()
    if window is not None:
        # Done, not claimed: a batch parked behind an open circuit ends at once, having
        # completed nothing, and must not read as a rate.
        window.finished(completed=sender.done, seconds=time.monotonic() - started)
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
    wakeups: WorkerWakeups,
    slots: BatchSlots,
    window: SlotsWindow,
) -> None:
    """Loop until `stop` is set, claiming while there is work (each batch in one of the
    `slots`); idle, wait for the bell or for this worker's turn to look (WorkerWakeups)."""
    while not stop.is_set():
        try:
            async with slots:
                if stop.is_set():
                    break
                busy = await work_once(ctx, worker=worker, bell=wakeups.bell, window=window)
        except Exception:
            # The claimed revisions keep their lease and are taken again when it expires.
            log_retried_failure(log, "worker %s: batch failed", worker)
            busy = False
        stats.polls += 1
        wait = poll_interval
        while not busy and not stop.is_set():
            if await wakeups.bell.wait(wait):
                break
            wait = wakeups.wait_for_turn(poll_interval)
            if wait == 0:
                break
