"""PUT /api/v1/topology: bulk upsert of the inventory used to locate tickets (JSON or CSV)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ticketing_common.openapi import error_responses
from ticketing_common.web import BoundaryRoute
from wm_service.deps import SessionDep, media_type, read_body, require_admin
from wm_service.schemas import TopologyResult, TopologyUpload
from wm_service.services import topology as topology_service

router = APIRouter(
    prefix="/api/v1/topology",
    tags=["topology"],
    dependencies=[Depends(require_admin)],
    route_class=BoundaryRoute,
)

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": TopologyUpload.model_json_schema()},
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": "Header: " + ",".join(topology_service.TOPOLOGY_COLUMNS),
                }
            },
        },
    }
}


@router.put(
    "",
    response_model=TopologyResult,
    summary="Upsert topology elements",
    openapi_extra=_BODY,
    responses=error_responses(413, 415),
)
async def put_topology(request: Request, session: SessionDep) -> TopologyResult:
    kind_of_body = media_type(request, accepted=("application/json", "text/csv"))
    body = await read_body(request, limit=request.app.state.settings.max_push_bytes)
    elements = topology_service.parse_topology(body, media_type=kind_of_body)
    upserted = await topology_service.upsert_elements(session, elements=elements)
    return TopologyResult(upserted=upserted)
