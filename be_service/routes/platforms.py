"""GET /api/v1/platforms: each platform's health and circuit as this BE sees it."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, Request

from be_service.deps import require_admin
from be_service.schemas import PlatformHealthPublic
from ticketing_common.web import BoundaryRoute

router = APIRouter(
    prefix="/api/v1/platforms",
    tags=["platforms"],
    dependencies=[Depends(require_admin)],
    route_class=BoundaryRoute,
)


@router.get("", summary="Health and circuit of each platform (in this BE process)")
async def list_platforms(request: Request) -> list[PlatformHealthPublic]:
    return [
        PlatformHealthPublic.model_validate(asdict(health.snapshot()))
        for health in request.app.state.health.values()
    ]
