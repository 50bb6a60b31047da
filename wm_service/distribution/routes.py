"""/api/v1/backends: the BE instances register and heartbeat here; operators list and remove.

Thin routes over registry.py; the request's session scope is the transaction boundary.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from ticketing_common.web import BoundaryRoute
from wm_service.deps import SessionDep, require_admin
from wm_service.distribution import registry
from wm_service.distribution.delivery import utcnow
from wm_service.distribution.schemas import (
    BACKEND_NAME_PATTERN,
    BackendList,
    BackendPublic,
    BackendRegistration,
)
from wm_service.distribution.worker import DistributionConfig

router = APIRouter(
    prefix="/api/v1/backends",
    tags=["backends"],
    dependencies=[Depends(require_admin)],
    route_class=BoundaryRoute,
)

BackendName = Annotated[
    str, Path(pattern=BACKEND_NAME_PATTERN, description="Name of the BE instance.")
]


def _health(request: Request) -> registry.Health:
    return DistributionConfig.from_settings(request.app.state.settings).health


@router.put("/{name}", response_model=BackendPublic, summary="Register a BE (and heartbeat)")
async def put_backend(
    name: BackendName, registration: BackendRegistration, request: Request, session: SessionDep
) -> BackendPublic:
    await registry.register(session, name=name, registration=registration, now=utcnow())
    return await registry.describe(session, name=name, now=utcnow(), health=_health(request))


@router.get("", response_model=BackendList, summary="Backends, their health and their tickets")
async def list_backends(request: Request, session: SessionDep) -> BackendList:
    return await registry.overview(session, now=utcnow(), health=_health(request))


@router.get("/{name}", response_model=BackendPublic, summary="One backend")
async def get_backend(name: BackendName, request: Request, session: SessionDep) -> BackendPublic:
    return await registry.describe(session, name=name, now=utcnow(), health=_health(request))


@router.delete(
    "/{name}", status_code=204, summary="Remove a BE; its undelivered tickets move to the others"
)
async def delete_backend(name: BackendName, request: Request, session: SessionDep) -> Response:
    await registry.delete(session, name=name, now=utcnow(), health=_health(request))
    return Response(status_code=204)
