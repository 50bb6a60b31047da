"""GET/PATCH /api/v1/settings: the rule settings in force (thresholds, window, count)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ticketing_common.web import BoundaryRoute
from wm_service.deps import SessionDep, require_admin
from wm_service.schemas import RuleSettings, RuleSettingsPatch
from wm_service.services import settings as settings_service

router = APIRouter(
    prefix="/api/v1/settings",
    tags=["settings"],
    dependencies=[Depends(require_admin)],
    route_class=BoundaryRoute,
)


@router.get("", response_model=RuleSettings, summary="Rule settings in force")
async def read_settings(session: SessionDep) -> RuleSettings:
    return await settings_service.get_rules(session)


@router.patch("", response_model=RuleSettings, summary="Change rule settings (next push on)")
async def patch_settings(patch: RuleSettingsPatch, session: SessionDep) -> RuleSettings:
    return await settings_service.update_rules(session, patch=patch)
