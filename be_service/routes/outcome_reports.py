"""The outbox of outcome reports to the WM, for an operator: what waits, what was refused as
invalid and set aside (be_service/reports.py), putting the refused back in line, and
discarding one that can never be accepted."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query

from be_service.deps import Actor, SessionDep, require_admin
from be_service.reports import ReportState, discard_refused, log_discarded, outbox, retry_refused
from be_service.schemas import OutcomeReportPage, OutcomeReportPublic, RetryResult
from ticketing_common.openapi import error_responses
from ticketing_common.outcome import INT64_MAX
from ticketing_common.web import BoundaryRoute

ReportId = Annotated[int, Path(ge=1, le=INT64_MAX, description="The report's id in the listing.")]

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


@router.post(
    "/{report_id}/discard",
    summary="Delete one refused outcome report unsent (the WM keeps the stage it last knew)",
    # 404: no such report (sent, superseded or discarded); 409: it is not refused but waiting.
    responses=error_responses(404, 409),
)
async def discard_refused_report(
    report_id: ReportId, session: SessionDep, background: BackgroundTasks, actor: str = Actor
) -> OutcomeReportPublic:
    report = await discard_refused(session, report_id=report_id)
    background.add_task(log_discarded, report, actor)  # after the commit: a true record
    return report
