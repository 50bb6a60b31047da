"""/api/v1/control: pause, resume and re-drive on the BEs in one call (distribution/control.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from ticketing_common.openapi import error_responses
from ticketing_common.web import BoundaryRoute
from wm_service.deps import SessionDep, require_admin
from wm_service.distribution import control
from wm_service.distribution.control import ControlRequest, ControlResult

router = APIRouter(
    prefix="/api/v1/control",
    tags=["control"],
    dependencies=[Depends(require_admin)],
    route_class=BoundaryRoute,
)


# A `backend` that is not registered is a 404.
@router.post(
    "/pause",
    summary="Pause processing on one BE (`backend`) or on all",
    responses=error_responses(404),
)
async def pause(body: ControlRequest, request: Request) -> ControlResult:
    return await control.carry_out(request.app.state.sessionmaker, action="pause", request=body)


@router.post(
    "/resume",
    summary="Resume processing on one BE (`backend`) or on all",
    responses=error_responses(404),
)
async def resume(body: ControlRequest, request: Request) -> ControlResult:
    return await control.carry_out(request.app.state.sessionmaker, action="resume", request=body)


@router.post(
    "/retry-errors",
    summary="Re-drive Error revisions on every BE (or one), all or of a kind, market or step",
    responses=error_responses(404),
)
async def retry_errors(body: ControlRequest, request: Request) -> ControlResult:
    return await control.carry_out(
        request.app.state.sessionmaker, action="retry-errors", request=body
    )


@router.get("/actions", summary="The latest operator actions: who, when, what each BE answered")
async def actions(
    session: SessionDep, limit: int = Query(50, ge=1, le=500)
) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json") for a in await control.recent(session, limit=limit)]
