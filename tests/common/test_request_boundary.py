"""Every API route of both services goes through the request boundary (web.BoundaryRoute):
a router added without it would read bodies before authenticating again."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from be_service.config import BESettings
from be_service.main import create_app as create_be
from ticketing_common.web import BoundaryRoute
from wm_service.config import WMSettings
from wm_service.main import create_app as create_wm


@pytest.mark.parametrize(
    "app", [create_wm(WMSettings()), create_be(BESettings(name="be-test"))], ids=["wm", "be"]
)
def test_every_api_route_is_a_boundary_route(app: FastAPI) -> None:
    """No /api/ route of either service bypasses BoundaryRoute."""
    routes = [r for r in iter_route_contexts(app.routes) if (r.path or "").startswith("/api/")]
    assert routes
    bypassing = [r.path for r in routes if not isinstance(r.original_route, BoundaryRoute)]
    assert bypassing == []
