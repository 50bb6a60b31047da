"""The outbox of outcome reports to the WM, for an operator: what waits, what was refused as
invalid and set aside (be_service/reports.py), and putting the refused back in line."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from be_service.deps import SessionDep, require_admin
from be_service.reports import ReportState, outbox, retry_refused
from be_service.schemas import OutcomeReportPage, RetryResult
from ticketing_common.web import BoundaryRoute

router = APIRouter(
    prefix="/api/v1/outcome-reports",
    tags=["outcome reports"],
    dependencies=[Depends(require_admin)],
    route_class=BoundaryRoute,
)


@router.get("", summary="Outcome reports not yet acknowledged by the WM, oldest first")
async def list_outcome_reports(
    session: SessionDep,
    state: ReportState | None = None,
    limit: int = Query(50, ge=1, le=500),
) -> OutcomeReportPage:
    return await outbox(session, state=state, limit=limit)


@router.post(
    "/retry",
    summary="Send the refused outcome reports again now (after a fix), not at their next retry",
)
async def retry_refused_reports(session: SessionDep) -> RetryResult:
    return RetryResult(retried=await retry_refused(session))
