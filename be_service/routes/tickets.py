"""Ticket routes: the WM's intake, and the operator's list, detail and retry endpoints."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request

from be_service.deps import (
    SessionDep,
    require_admin,
    require_control,
    require_intake,
    wake_workers,
)
from be_service.models import Status
from be_service.schemas import IntakeResult, RetryResult, TicketBatchIn, TicketDetail, TicketPage
from be_service.services import intake, tickets
from ticketing_common.openapi import error_responses
from ticketing_common.text import NUL_FREE
from ticketing_common.web import BoundaryRoute

router = APIRouter(prefix="/api/v1/tickets", tags=["tickets"], route_class=BoundaryRoute)


def _reports(request: Request) -> bool:
    """A BE reports outcomes to the WM only when it knows one (BE_WM_URL)."""
    return bool(request.app.state.settings.wm_url)


@router.post(
    "",
    dependencies=[Depends(require_intake), Depends(wake_workers)],
    summary="Record ticket revisions as Received (all or nothing, idempotent)",
)
async def post_tickets(
    body: TicketBatchIn, request: Request, session: SessionDep, background: BackgroundTasks
) -> IntakeResult:
    """Accepted batches refresh the table's statistics now and then (StatisticsRefresher)."""
    result = await intake.create(
        session, tickets=body.tickets, generation=body.generation, report=_reports(request)
    )
    if await request.app.state.statistics.due(result.accepted):
        background.add_task(request.app.state.statistics.refresh)
    return result


@router.get("", dependencies=[Depends(require_admin)], summary="List ticket revisions")
async def list_tickets(
    session: SessionDep,
    status: Status | None = None,
    category: str | None = Query(None, pattern=NUL_FREE),
    dedup_key: str | None = Query(None, pattern=NUL_FREE),
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
) -> TicketPage:
    return await tickets.get_page(
        session, status=status, category=category, dedup_key=dedup_key, cursor=cursor, limit=limit
    )


@router.post(
    "/retry-errors",
    dependencies=[Depends(require_control), Depends(wake_workers)],
    summary="Send the Error revisions (all, or of a kind, market or failed step) back to "
    "processing with fresh retry counts",
)
async def retry_errors(
    session: SessionDep,
    request: Request,
    kind: str | None = Query(None, max_length=64, pattern=NUL_FREE),
    market: str | None = Query(None, max_length=200, pattern=NUL_FREE),
    operation: str | None = Query(None, max_length=16, pattern=NUL_FREE, description="failed step"),
) -> RetryResult:
    chosen = tickets.ErrorFilter(kind=kind, market=market, operation=operation)
    retried = await tickets.retry_errors(session, report=_reports(request), only=chosen)
    return RetryResult(retried=retried)


@router.get(
    "/{ticket_id:uuid}",
    # The WM shows one ticket's platform attempts on its console (control token, read of
    # one ticket only; the lists stay the operators').
    dependencies=[Depends(require_control)],
    summary="A ticket's revisions, platform ids and attempts",
)
async def get_ticket(ticket_id: uuid.UUID, session: SessionDep) -> TicketDetail:
    return await tickets.get(session, ticket_id=ticket_id)


@router.post(
    "/{ticket_id:uuid}/retry",
    dependencies=[Depends(require_control), Depends(wake_workers)],
    summary="Send a ticket's Error revisions back to processing with fresh retry counts",
    responses=error_responses(409),  # the ticket has no revision in Error
)
async def retry_ticket(ticket_id: uuid.UUID, session: SessionDep, request: Request) -> RetryResult:
    retried = await tickets.retry(session, ticket_id=ticket_id, report=_reports(request))
    return RetryResult(retried=retried)
