"""Read side of the pushes: the recent aggregations and what each one did."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.cursor import KeysetCursor
from wm_service.models import AggregationPush
from wm_service.schemas import PushPage, PushResult
from wm_service.services import push_plan
from wm_service.services.bulk import driver_connection

PUSH_CURSOR = KeysetCursor(int)  # the push id


async def list_pushes(
    session: AsyncSession, *, kind: str | None, limit: int, cursor: str | None
) -> PushPage:
    """Newest first (by arrival), keyset-paginated."""
    query = select(AggregationPush).order_by(col(AggregationPush.id).desc()).limit(limit + 1)
    if kind is not None:
        query = query.where(AggregationPush.kind == kind)
    if cursor is not None:
        (last_id,) = PUSH_CURSOR.decode(cursor)
        query = query.where(col(AggregationPush.id) < last_id)
    rows = list((await session.exec(query)).all())
    page = rows[:limit]
    next_cursor = PUSH_CURSOR.encode(page[-1].id) if len(rows) > limit else None
    pending = await push_plan.to_write(
        await driver_connection(session), [row.id for row in page if row.id is not None]
    )
    items = [
        PushResult.model_validate({**row.result, "revisions_to_write": pending.get(row.id or 0, 0)})
        for row in page
    ]
    return PushPage(items=items, next_cursor=next_cursor)
