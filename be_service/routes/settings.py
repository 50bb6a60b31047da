"""Settings routes: the three run-time settings, plus the non-secret connection settings."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from be_service.config import BESettings
from be_service.deps import SessionDep, get_settings, require_admin, wake_workers
from be_service.schemas import SettingsPublic, SettingsUpdate
from be_service.services import settings as settings_service
from ticketing_common.web import BoundaryRoute

router = APIRouter(
    prefix="/api/v1/settings",
    tags=["settings"],
    dependencies=[Depends(require_admin)],
    route_class=BoundaryRoute,
)


@router.get("", summary="Current settings (secrets are never shown)")
async def get_settings_route(
    session: SessionDep, env: BESettings = Depends(get_settings)
) -> SettingsPublic:
    return settings_service.public(await settings_service.get(session), env=env)


@router.patch(
    "",
    # Processing switched on, or a larger batch size: there may be work for idle workers.
    dependencies=[Depends(wake_workers)],
    summary="Change run-time settings; the next batch uses them",
)
async def patch_settings(
    patch: SettingsUpdate,
    session: SessionDep,
    env: BESettings = Depends(get_settings),
) -> SettingsPublic:
    row = await settings_service.update(session, patch=patch)
    return settings_service.public(row, env=env)
