"""What every FastAPI app of the system shares: offline docs, error shape, health probes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import fastapi_swagger
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ticketing_common.errors import install_error_handlers
from ticketing_common.openapi import install_openapi

# Swagger UI 5 (reads OpenAPI 3.1, which FastAPI writes), shipped inside a wheel: /docs works
# on an air-gapped NOC network.
_SWAGGER_ASSETS = Path(next(iter(fastapi_swagger.__path__))) / "resources"


def create_base_app(
    *,
    title: str,
    description: str,
    version: str,
    lifespan: Callable[..., object] | None = None,
    uses_database: bool = True,
) -> FastAPI:
    """A FastAPI app whose /docs works air-gapped (Swagger UI served from a package) and
    documents the real error shape; `uses_database` adds the 503 answers to its operations."""
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,  # type: ignore[arg-type]
        docs_url=None,
        redoc_url=None,
    )
    app.mount("/_docs_assets", StaticFiles(directory=_SWAGGER_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} — API",
            swagger_js_url="/_docs_assets/swagger-ui-bundle.js",
            swagger_css_url="/_docs_assets/swagger-ui.css",
            swagger_favicon_url="/_docs_assets/favicon-32x32.png",
            swagger_ui_parameters={"persistAuthorization": True, "displayRequestDuration": True},
        )

    install_error_handlers(app)
    install_openapi(app, uses_database=uses_database)
    return app


def add_health_routes(app: FastAPI, readiness: Callable[[], Awaitable[dict[str, str]]]) -> None:
    """`/healthz`: the process answers. `/readyz`: `readiness()` returns its failed checks."""

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Database reachable and migrated to head")
    async def readyz() -> JSONResponse:
        problems = await readiness()
        if problems:
            return JSONResponse({"status": "unavailable", "checks": problems}, status_code=503)
        return JSONResponse({"status": "ready"})
