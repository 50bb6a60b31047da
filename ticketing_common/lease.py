"""Leases on claimed queue rows: the one claiming pattern of the WM's outbox and the BE's queue.

A worker claims rows in a short transaction (FOR UPDATE SKIP LOCKED, then `claimed_by` and
`claimed_until`), commits, does its HTTP work outside any transaction while `keep_lease`
renews the lease, and records the outcome in another short transaction only on the rows it
still holds. A crashed worker's rows become claimable again once its lease lapses.
Each service writes its own claim SQL; what they share is here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

from ticketing_common.errors import log_retried_failure

log = logging.getLogger(__name__)


def worker_name(owner: str, n: int | str) -> str:
    """The `claimed_by` of one worker task: `owner:<random>:n`, unique even when one process
    runs several workers of the same owner (tests, two WM workers on one database)."""
    return f"{owner}:{secrets.token_hex(4)}:{n}"


@contextlib.asynccontextmanager
async def keep_lease(
    renew: Callable[[], Awaitable[object]], *, lease_seconds: float, name: str
) -> AsyncIterator[asyncio.Lock]:
    """Call `renew()` every third of the lease while the body runs (a slow call must not let
    the lease lapse while its worker still works on the rows).

    With renewal a lease only has to outlive a crashed worker, so it can stay short and the
    crashed worker's rows are taken again soon. A failed renewal is logged and the work goes
    on: if the database stays away the lease lapses, which is the safe side (nobody else can
    claim without the database either).

    Yields a lock that the body holds around its own writes to the leased rows: no renewal
    runs beside them. The renewal and a write lock the same rows, each in its own order, and
    two transactions of one worker that do so can deadlock: Postgres then aborts one (seen in
    the suite: a BE's record of a batch aborted, the batch's revisions checked again).
    """
    writing = asyncio.Lock()

    async def renewing() -> None:
        while True:
            await asyncio.sleep(lease_seconds / 3)
            try:
                async with writing:
                    await renew()
            except Exception:
                log_retried_failure(log, "%s: could not renew its lease", name)

    renewer = asyncio.create_task(renewing(), name=f"lease-{name}")
    try:
        yield writing
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
