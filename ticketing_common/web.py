"""What every FastAPI app of the system shares: offline docs, error shape, health probes,
the request's database session (the one commit point of a request) and the request
boundary (authenticate, then read the body strictly; 405 answers that list every method)."""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import fastapi_swagger
import msgspec
from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ticketing_common.auth import TokenGuard
from ticketing_common.db import session_scope
from ticketing_common.errors import (
    ErrorDetail,
    NotStored,
    ValidationFailed,
    error_body,
    install_error_handlers,
)
from ticketing_common.openapi import install_openapi
from ticketing_common.text import json_is_plain, json_problems

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
    app.add_exception_handler(405, _method_not_allowed)
    install_openapi(app, uses_database=uses_database)
    return app


async def _method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """405 whose Allow lists the methods of every route of this path, not just the first."""
    assert isinstance(exc, StarletteHTTPException)
    allowed: set[str] = set()
    # FastAPI nests included routers; iter_route_contexts walks them as the router does.
    for route in iter_route_contexts(request.app.router.routes):
        match, _ = route.matches({**request.scope, "method": ""})
        if match is not Match.NONE:
            allowed |= route.methods or set()
    headers = {"Allow": ", ".join(sorted(allowed))} if allowed else None
    return JSONResponse(error_body("http_405", str(exc.detail)), status_code=405, headers=headers)


def _strict_json(body: bytes) -> Any:
    """The JSON document in `body`; a 422 naming `body` for what is not plain JSON
    (NaN/Infinity, a number out of range, invalid UTF-8, nesting deep enough to exhaust the
    parser's stack). msgspec parses it: the BEs' intake batches and reports are the busiest
    bodies, and it builds the same objects as json.loads in about half the time."""
    try:
        # A UTF-8 byte order mark is tolerated (some Windows clients send one), as before.
        return msgspec.json.decode(body[3:] if body.startswith(codecs.BOM_UTF8) else body)
    except (ValueError, RecursionError) as exc:  # msgspec.DecodeError is a ValueError
        message = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ValidationFailed(
            f"invalid JSON body: {message}", details=[ErrorDetail("body", message)]
        ) from exc


def _is_json(request: Request) -> bool:
    # As FastAPI decides: no content-type, application/json or application/*+json.
    value = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return value in ("", "application/json") or (
        value.startswith("application/") and value.endswith("+json")
    )


class BoundaryRoute(APIRoute):
    """A route that authenticates first and reads its JSON body strictly.

    FastAPI parses a body before it runs any dependency, so a malformed body without a
    token answered 422; here the route's token guards run first (401/403), then the body
    is checked as a whole (ticketing_common.text.json_problems: no NUL, bounded nesting),
    each problem a 422 naming its field, before FastAPI validates it against the model.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guards = [d.call for d in self.dependant.dependencies if isinstance(d.call, TokenGuard)]
        reads_json = self.body_field is not None

        async def boundary(request: Request) -> Response:
            for guard in guards:
                guard.authenticate(request)
            if reads_json and _is_json(request):
                body = await request.body()
                if body:
                    document = _strict_json(body)
                    problems = [] if json_is_plain(body, document) else json_problems(document)
                    if problems:
                        first = problems[0]
                        raise ValidationFailed(
                            f"invalid request: {first.field}: {first.message}",
                            details=problems,
                        )
                    # Starlette's Request.json() cache, which FastAPI reads the body from:
                    # a 500-ticket batch is parsed once, not twice.
                    request._json = document
            return await handler(request)

        return boundary


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


def wake_after_response(background: BackgroundTasks, wake: Callable[[], None]) -> None:
    """Call `wake` (it sets an asyncio event) once the response is sent, so after the
    request's commit: what it wakes sees the rows the request wrote. On the event loop:
    Starlette runs a plain background function on a thread, and asyncio events must be
    set from their loop's thread."""

    async def on_loop() -> None:
        wake()

    background.add_task(on_loop)
