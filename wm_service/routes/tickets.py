"""GET /api/v1/tickets (filtered, paginated) and GET /api/v1/tickets/{id} (with history)."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from ticketing_common.openapi import error_responses
from ticketing_common.query import reject_unknown_query
from ticketing_common.text import NUL_FREE
from ticketing_common.web import BoundaryRoute
from wm_service.deps import SessionDep, require_admin
from wm_service.distribution import control
from wm_service.distribution.control import ControlRequest, ControlResult
from wm_service.kinds import Category, TicketKind
from wm_service.schemas import Stage, TicketDetail, TicketPage
from wm_service.services import tickets as tickets_service
from wm_service.services.tickets import TicketFilters

router = APIRouter(
    prefix="/api/v1/tickets",
    tags=["tickets"],
    dependencies=[Depends(require_admin)],
    route_class=BoundaryRoute,
)


@router.get(
    "",
    response_model=TicketPage,
    dependencies=[Depends(reject_unknown_query)],
    summary="Tickets, newest opened first, with their stage, BE and platform numbers",
)
async def list_tickets(
    session: SessionDep,
    kind: TicketKind | None = None,
    category: Category | None = None,
    state: Literal["open", "cleared"] | None = None,
    stage: Stage | None = Query(None, description="Stage of the latest revision's delivery"),
    entity: str | None = Query(
        None, description="Exact entity_id", max_length=200, pattern=NUL_FREE
    ),
    market: str | None = Query(None, description="Exact market", max_length=200, pattern=NUL_FREE),
    hub: str | None = Query(None, description="Exact hub", max_length=200, pattern=NUL_FREE),
    incident: str | None = Query(
        None, description="Cherwell IncidentID", max_length=64, pattern=NUL_FREE
    ),
    work_order: str | None = Query(
        None, description="SFyC WorkOrderNumber", max_length=64, pattern=NUL_FREE
    ),
    opened_from: AwareDatetime | None = Query(None, description="Opened at or after"),
    opened_to: AwareDatetime | None = Query(None, description="Opened before"),
    updated_from: AwareDatetime | None = Query(None, description="Last changed at or after"),
    updated_to: AwareDatetime | None = Query(None, description="Last changed before"),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
) -> TicketPage:
    filters = TicketFilters(
        kind=kind,
        category=category,
        state=state,
        stage=stage,
        entity_id=entity,
        market=market,
        hub=hub,
        incident=incident,
        work_order=work_order,
        opened_from=opened_from,
        opened_to=opened_to,
        updated_from=updated_from,
        updated_to=updated_to,
    )
    return await tickets_service.list_tickets(session, filters=filters, limit=limit, cursor=cursor)


@router.get("/{ticket_id}", response_model=TicketDetail, summary="One ticket with its revisions")
async def get_ticket(ticket_id: uuid.UUID, session: SessionDep) -> TicketDetail:
    return await tickets_service.get_ticket(session, ticket_id=ticket_id)


@router.post(
    "/{ticket_id}/retry",
    summary="Re-drive the ticket's Error revisions on the BE that holds it",
    responses=error_responses(404),
)
async def retry_ticket(
    ticket_id: uuid.UUID, body: ControlRequest, request: Request
) -> ControlResult:
    return await control.carry_out(
        request.app.state.sessionmaker, action="retry-ticket", request=body, ticket_id=ticket_id
    )
