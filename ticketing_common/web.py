"""What every FastAPI app of the system shares: offline docs, error shape, health probes,
and the request's database session (the one commit point of a request)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated

import fastapi_swagger
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.db import session_scope
from ticketing_common.errors import NotStored, install_error_handlers
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


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request (on `app.state.sessionmaker`): committed when the route
    returns, else rolled back.

    A failed commit answers 503 with Retry-After (nothing was stored; the WM resends its
    batch, the aggregator its push) instead of an unhandled error, which uvicorn would turn
    into a 500 or a dropped connection. Errors raised by the route itself pass through.
    """
    committing = False
    try:
        async for session in session_scope(request.app.state.sessionmaker):
            yield session
            committing = True
    except SQLAlchemyError as exc:
        if not committing:
            raise
        raise NotStored("the database could not store this request; nothing was stored") from exc


# scope="function": the commit happens before the response is sent, so a client that got a
# 2xx can rely on the data being stored, and a failed commit becomes an error response.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
