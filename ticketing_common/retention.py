"""Retention: prune what is past a horizon, in small batches that never block the pipeline.

Each service declares its prune steps (wm_service/services/retention.py,
be_service/retention.py) and a clock; this runner turns them into a background task. A step
deletes at most `batch_size` of its rows (and their dependants) in one short transaction with
`FOR UPDATE SKIP LOCKED`, so a row the pipeline holds is simply left for the next pass, and a
pass interrupted anywhere (a restart) leaves nothing half done: the next one goes on.

Ages are measured on the domain's times (when a push was generated and received, when a
revision was made) against the service's injectable clock (ticketing_common/clock.py), so a
soak can replay weeks of pushes in minutes and watch the tables level off (bench/soak.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from prometheus_client import Counter as MetricCounter
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.clock import Clock
from ticketing_common.db import session_scope
from ticketing_common.errors import log_retried_failure
from ticketing_common.waits import LoopWorker

log = logging.getLogger(__name__)

_scope = contextlib.asynccontextmanager(session_scope)


@dataclass(frozen=True)
class PruneStep:
    """One kind of row to prune. `prune(session, horizon, limit)` deletes at most `limit` of
    them, older than `horizon`, with what depends on them; it returns the rows it deleted by
    table, the step's own `table` among them (fewer than `limit` of those: it is done)."""

    table: str
    prune: Callable[[AsyncSession, datetime, int], Awaitable[Mapping[str, int]]]


class RetentionSettings(Protocol):
    """The three retention settings both services have (WM_RETENTION_*, BE_RETENTION_*)."""

    retention_days: float
    retention_batch_size: int
    retention_interval_seconds: float


@dataclass(frozen=True)
class RetentionPolicy:
    days: float
    batch_size: int = 1000
    interval_seconds: float = 300.0
    # Breathing room between two batches, so the pipeline's transactions always get in.
    pause_seconds: float = 0.05

    @classmethod
    def of(cls, settings: RetentionSettings) -> RetentionPolicy:
        return cls(
            days=settings.retention_days,
            batch_size=settings.retention_batch_size,
            interval_seconds=settings.retention_interval_seconds,
        )


class RetentionWorker(LoopWorker):
    """Runs every step until it is done, every `interval_seconds`, until stopped."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        policy: RetentionPolicy,
        steps: Sequence[PruneStep],
        clock: Clock,
        pruned: MetricCounter,
        service: str,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._policy = policy
        self._steps = steps
        self._clock = clock
        self._pruned = pruned
        self._service = service
        self.task_name = f"{service}-retention"

    async def prune_once(self, *, max_batches: int | None = None) -> Counter[str]:
        """One pass over every step; rows deleted by table. `max_batches` stops it early
        (as a restart would)."""
        pruned: Counter[str] = Counter()
        horizon = self._clock() - timedelta(days=self._policy.days)
        batches = 0
        for step in self._steps:
            while max_batches is None or batches < max_batches:
                async with _scope(self._sessionmaker) as session:
                    deleted = await step.prune(session, horizon, self._policy.batch_size)
                batches += 1
                for table, count in deleted.items():
                    pruned[table] += count
                    self._pruned.labels(table).inc(count)
                if deleted.get(step.table, 0) < self._policy.batch_size:
                    break
                await asyncio.sleep(self._policy.pause_seconds)
        if pruned:
            log.info(
                "%s retention: pruned %s (older than %s)",
                self._service,
                ", ".join(f"{n} {table}" for table, n in sorted(pruned.items())),
                horizon.isoformat(),
                extra={"horizon": horizon.isoformat(), "pruned": dict(pruned)},
            )
        return pruned

    async def _loop(self) -> None:
        while True:
            try:
                await self.prune_once()
            except Exception:
                log_retried_failure(
                    log, "%s retention pass failed; retrying next interval", self._service
                )
            await asyncio.sleep(self._policy.interval_seconds)
