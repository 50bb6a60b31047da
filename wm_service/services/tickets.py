"""Read side of the tickets: filtered, keyset-paginated list and one ticket with its history."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.contract import TicketDocument
from ticketing_common.cursor import KeysetCursor
from ticketing_common.errors import NotFound
from wm_service.models import Ticket, TicketDelivery, TicketRevision
from wm_service.schemas import (
    DeliveryPublic,
    RevisionPublic,
    TicketDetail,
    TicketPage,
    TicketSummary,
)

# Newest opened first, ties broken by id.
TICKET_CURSOR = KeysetCursor(datetime, uuid.UUID)


def _summary(ticket: Ticket) -> TicketSummary:
    return TicketSummary.model_validate(ticket, from_attributes=True)


async def list_tickets(
    session: AsyncSession,
    *,
    kind: str | None,
    category: str | None,
    state: str | None,
    entity_id: str | None,
    limit: int,
    cursor: str | None,
) -> TicketPage:
    """Newest opened first; every filter is optional and they combine with AND."""
    filters = []
    if kind is not None:
        filters.append(col(Ticket.kind) == kind)
    if category is not None:
        filters.append(col(Ticket.category) == category)
    if entity_id is not None:
        filters.append(col(Ticket.entity_id) == entity_id)
    per_state = await session.exec(
        select(Ticket.state, func.count()).where(*filters).group_by(col(Ticket.state))
    )
    counts = {"open": 0, "cleared": 0} | {name: int(n) for name, n in per_state.all()}
    query = (
        select(Ticket)
        .where(*filters)
        .order_by(col(Ticket.opened_at).desc(), col(Ticket.id).desc())
        .limit(limit + 1)
    )
    if state is not None:
        query = query.where(Ticket.state == state)
    if cursor is not None:
        opened_at, last_id = TICKET_CURSOR.decode(cursor)
        query = query.where(
            (col(Ticket.opened_at) < opened_at)
            | ((col(Ticket.opened_at) == opened_at) & (col(Ticket.id) < last_id))
        )
    rows = list((await session.exec(query)).all())
    page = rows[:limit]
    next_cursor = (
        TICKET_CURSOR.encode(page[-1].opened_at, page[-1].id) if len(rows) > limit else None
    )
    return TicketPage(items=[_summary(t) for t in page], next_cursor=next_cursor, counts=counts)


async def get_ticket(session: AsyncSession, *, ticket_id: uuid.UUID) -> TicketDetail:
    """The ticket, its current JSON, and every revision with its delivery state."""
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound(f"no ticket {ticket_id}")
    rows = (
        await session.exec(
            select(TicketRevision, TicketDelivery)
            .join(
                TicketDelivery,
                col(TicketDelivery.revision_id) == col(TicketRevision.id),
                isouter=True,
            )
            .where(TicketRevision.ticket_id == ticket_id)
            .order_by(col(TicketRevision.revision))
        )
    ).all()
    revisions = [
        RevisionPublic(
            revision=revision.revision,
            action=revision.action,
            reason=revision.payload.get("reason"),
            priority=revision.priority,
            created_at=revision.created_at,
            ticket=TicketDocument.model_validate(revision.payload),
            delivery=DeliveryPublic.model_validate(delivery, from_attributes=True)
            if delivery is not None
            else None,
        )
        for revision, delivery in rows
    ]
    return TicketDetail(
        **_summary(ticket).model_dump(),
        ticket=TicketDocument.model_validate(ticket.payload),
        revisions=revisions,
    )
