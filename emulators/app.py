"""The emulator apps: Cherwell and SFyC on one port (`ticketing emulators`) or separately.

Every factory builds a fresh `EmulatorState`; the control API is mounted on each of them.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from emulators import cherwell, control, sfyc
from emulators.config import EmulatorSettings
from emulators.state import EmulatorState
from ticketing_common.web import add_health_routes, create_base_app

VERSION = "0.1.0"


async def _ready() -> dict[str, str]:
    # Nothing to wait for: the state is in memory and exists as soon as the app does.
    return {}


def _build(title: str, routers: list[APIRouter], settings: EmulatorSettings | None) -> FastAPI:
    app = create_base_app(
        title=title,
        description="In-memory platform emulators with fault injection (/_emulator).",
        version=VERSION,
        uses_database=False,
    )
    app.state.emulator = EmulatorState(settings or EmulatorSettings())
    add_health_routes(app, _ready)
    app.include_router(control.router)
    for router in routers:
        app.include_router(router)
    return app


def create_app(settings: EmulatorSettings | None = None) -> FastAPI:
    """Both platforms: `/CherwellAPI/...`, `/services/...`, plus `/_emulator/...`."""
    return _build("Cherwell + SFyC emulators", [cherwell.router, sfyc.router], settings)


def create_cherwell_app(settings: EmulatorSettings | None = None) -> FastAPI:
    return _build("Cherwell emulator", [cherwell.router], settings)


def create_sfyc_app(settings: EmulatorSettings | None = None) -> FastAPI:
    return _build("SFyC emulator", [sfyc.router], settings)
