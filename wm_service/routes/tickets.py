"""GET /api/v1/tickets (filtered, paginated) and GET /api/v1/tickets/{id} (with history)."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Depends, Query

from wm_service.deps import SessionDep, require_admin
from wm_service.kinds import Category, TicketKind
from wm_service.schemas import TicketDetail, TicketPage
from wm_service.services import tickets as tickets_service

router = APIRouter(
    prefix="/api/v1/tickets", tags=["tickets"], dependencies=[Depends(require_admin)]
)


@router.get("", response_model=TicketPage, summary="Tickets, newest opened first")
async def list_tickets(
    session: SessionDep,
    kind: TicketKind | None = None,
    category: Category | None = None,
    state: Literal["open", "cleared"] | None = None,
    entity: str | None = Query(None, description="Exact entity_id"),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
) -> TicketPage:
    return await tickets_service.list_tickets(
        session,
        kind=kind,
        category=category,
        state=state,
        entity_id=entity,
        limit=limit,
        cursor=cursor,
    )


@router.get("/{ticket_id}", response_model=TicketDetail, summary="One ticket with its revisions")
async def get_ticket(ticket_id: uuid.UUID, session: SessionDep) -> TicketDetail:
    return await tickets_service.get_ticket(session, ticket_id=ticket_id)
