"""What the console's overview shows in one read: tickets by kind and state, recent pushes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wm_service.models import AggregationPush, Ticket
from wm_service.schemas import PushResult
from wm_service.services import tickets

RECENT = timedelta(hours=24)
RECENT_PUSHES_SHOWN = 100


@dataclass(frozen=True)
class KindCounts:
    kind: str
    open: int
    cleared: int


async def tickets_by_kind(session: AsyncSession) -> list[KindCounts]:
    rows = await session.exec(
        select(Ticket.kind, Ticket.state, func.count()).group_by(
            col(Ticket.kind), col(Ticket.state)
        )
    )
    counts: dict[str, dict[str, int]] = {}
    for kind, state, n in rows.all():
        counts.setdefault(kind, {})[state] = int(n)
    return [
        KindCounts(kind, by_state.get("open", 0), by_state.get("cleared", 0))
        for kind, by_state in sorted(counts.items())
    ]


async def recent_pushes(session: AsyncSession, *, now: datetime) -> list[PushResult]:
    """The pushes received in the last 24 h, newest first (at most RECENT_PUSHES_SHOWN)."""
    rows = await session.exec(
        select(AggregationPush.result)
        .where(col(AggregationPush.received_at) > now - RECENT)
        .order_by(col(AggregationPush.id).desc())
        .limit(RECENT_PUSHES_SHOWN)
    )
    return [PushResult.model_validate(result) for result in rows.all()]


async def tickets_by_stage(session: AsyncSession) -> dict[str, int]:
    """Open tickets by the stage of their latest revision (pending … completed, error)."""
    return await tickets.count_by_stage(session, state="open")
