"""/api/v1/backends: the BE instances register, heartbeat and report outcomes here; operators
list, remove and may register a BE by hand.

Thin routes over registry.py and reports.py; the request's session scope is the transaction
boundary. The backend token opens only the PUT and the reports; the admin token the rest.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from ticketing_common.outcome import ReportBatch, ReportResult
from ticketing_common.web import BoundaryRoute
from wm_service.deps import BACKEND, SessionDep, identify_registrant, require_admin, require_backend
from wm_service.distribution import registry, reports
from wm_service.distribution.delivery import utcnow
from wm_service.distribution.schemas import (
    BACKEND_NAME_PATTERN,
    BackendList,
    BackendPublic,
    BackendRegistered,
    BackendRegistration,
)
from wm_service.distribution.worker import DistributionConfig

router = APIRouter(prefix="/api/v1/backends", tags=["backends"], route_class=BoundaryRoute)
Admin = [Depends(require_admin)]

BackendName = Annotated[
    str, Path(pattern=BACKEND_NAME_PATTERN, description="Name of the BE instance.")
]


def _health(request: Request) -> registry.Health:
    return DistributionConfig.from_settings(request.app.state.settings).health


@router.put(
    "/{name}",
    response_model=BackendRegistered,
    summary="Register a BE: its heartbeat (backend token) or a registration by hand (admin)",
)
async def put_backend(
    name: BackendName,
    registration: BackendRegistration,
    request: Request,
    session: SessionDep,
    caller: Annotated[str, Depends(identify_registrant)],
) -> BackendRegistered:
    heartbeat = caller == BACKEND
    now = utcnow()
    await registry.register(
        session, name=name, registration=registration, now=now, heartbeat=heartbeat
    )
    return await registry.registered(
        session, name=name, now=now, health=_health(request), heartbeat=heartbeat
    )


@router.post(
    "/{name}/reports",
    dependencies=[Depends(require_backend)],
    summary="Outcome reports of a BE's revisions (acknowledged by a 2xx)",
)
async def post_reports(name: BackendName, body: ReportBatch, session: SessionDep) -> ReportResult:
    return await reports.apply(session, backend_name=name, reports=body.reports)


@router.get(
    "",
    response_model=BackendList,
    dependencies=Admin,
    summary="Backends, their health and their tickets",
)
async def list_backends(request: Request, session: SessionDep) -> BackendList:
    return await registry.overview(session, now=utcnow(), health=_health(request))


@router.get("/{name}", response_model=BackendPublic, dependencies=Admin, summary="One backend")
async def get_backend(name: BackendName, request: Request, session: SessionDep) -> BackendPublic:
    return await registry.describe(session, name=name, now=utcnow(), health=_health(request))


@router.delete(
    "/{name}",
    status_code=204,
    dependencies=Admin,
    summary="Remove a BE; its undelivered tickets move to the others",
)
async def delete_backend(name: BackendName, request: Request, session: SessionDep) -> Response:
    await registry.delete(session, name=name, now=utcnow(), health=_health(request))
    return Response(status_code=204)
