"""/api/v1/maintenance-windows: planned work that holds tickets back (services/maintenance.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from ticketing_common.web import BoundaryRoute
from wm_service.deps import SessionDep, media_type, read_body, require_admin
from wm_service.schemas import (
    MaintenanceImportResult,
    MaintenanceWindowCreate,
    MaintenanceWindowEnd,
    MaintenanceWindowPublic,
    MaintenanceWindowUpdate,
    SuppressedPage,
)
from wm_service.services import maintenance as maintenance_service

router = APIRouter(
    prefix="/api/v1/maintenance-windows",
    tags=["maintenance"],
    dependencies=[Depends(require_admin)],
    route_class=BoundaryRoute,
)

# A bigint id: matched as digits only (so /import is never taken for an id) and bounded, so a
# huge number is a 422, not a driver overflow.
WindowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Id of the window.")]

_CSV_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": "Header: " + ",".join(maintenance_service.CSV_COLUMNS),
                }
            }
        },
    }
}


def _by() -> Any:
    """A required `..._by` query parameter (one Query per use: FastAPI keeps its name on it)."""
    return Query(..., min_length=1, max_length=100, description="Who does it (recorded).")


@router.post("", response_model=MaintenanceWindowPublic, status_code=201, summary="Add a window")
async def create_window(
    data: MaintenanceWindowCreate, session: SessionDep
) -> MaintenanceWindowPublic:
    return await maintenance_service.create(session, data=data)


@router.post(
    "/import",
    response_model=MaintenanceImportResult,
    status_code=201,
    summary="Add many windows from CSV (all or nothing)",
    openapi_extra=_CSV_BODY,
)
async def import_windows(
    request: Request, session: SessionDep, created_by: str = _by()
) -> MaintenanceImportResult:
    media_type(request, accepted=("text/csv",))
    body = await read_body(request, limit=request.app.state.settings.max_push_bytes)
    windows = maintenance_service.parse_csv(body, created_by=created_by)
    created = await maintenance_service.create_many(session, windows=windows)
    return MaintenanceImportResult(created=created)


@router.get("", response_model=list[MaintenanceWindowPublic], summary="Windows, newest first")
async def list_windows(
    session: SessionDep,
    active: bool = Query(False, description="Only those covering their scope right now."),
    include_deleted: bool = False,
    limit: int = Query(200, ge=1, le=1000),
) -> list[MaintenanceWindowPublic]:
    return await maintenance_service.list_windows(
        session, active=active, include_deleted=include_deleted, limit=limit
    )


@router.get("/{window_id:int}", response_model=MaintenanceWindowPublic, summary="One window")
async def get_window(window_id: WindowId, session: SessionDep) -> MaintenanceWindowPublic:
    return await maintenance_service.get(session, window_id=window_id)


@router.patch("/{window_id:int}", response_model=MaintenanceWindowPublic, summary="Change a window")
async def patch_window(
    window_id: WindowId, patch: MaintenanceWindowUpdate, session: SessionDep
) -> MaintenanceWindowPublic:
    return await maintenance_service.update(session, window_id=window_id, patch=patch)


@router.post(
    "/{window_id:int}/end",
    response_model=MaintenanceWindowPublic,
    summary="End the work now (its samples so far stay excluded)",
)
async def end_window(
    window_id: WindowId, body: MaintenanceWindowEnd, session: SessionDep
) -> MaintenanceWindowPublic:
    return await maintenance_service.end(session, window_id=window_id, ended_by=body.ended_by)


@router.delete(
    "/{window_id:int}",
    status_code=204,
    summary="Delete a window made by mistake (its samples count again from the next push)",
)
async def delete_window(
    window_id: WindowId, session: SessionDep, deleted_by: str = _by()
) -> Response:
    await maintenance_service.delete(session, window_id=window_id, deleted_by=deleted_by)
    return Response(status_code=204)


@router.get(
    "/{window_id:int}/suppressed",
    response_model=SuppressedPage,
    summary="The decisions this window held back, newest first",
)
async def list_suppressed(
    window_id: WindowId,
    session: SessionDep,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
) -> SuppressedPage:
    return await maintenance_service.list_suppressed(
        session, window_id=window_id, limit=limit, cursor=cursor
    )
