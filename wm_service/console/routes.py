"""/console: the NOC console's pages (server-rendered, no JavaScript needed) and its sign-in.

Thin like the API routes: check the session (and the CSRF token on every POST), call the
same service functions the API uses, render a template.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from wm_service.console import session as console_session
from wm_service.console.session import COOKIE, LIFETIME_SECONDS, ConsoleSession
from wm_service.deps import SessionDep
from wm_service.distribution import registry
from wm_service.distribution.worker import DistributionConfig
from wm_service.services import overview

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/console", include_in_schema=False)


class SignInRequired(Exception):
    """No valid session: the browser is sent to the sign-in page."""


def _key(request: Request) -> bytes:
    return console_session.session_key(request.app.state.admin_token)


def signed_in(request: Request) -> ConsoleSession:
    found = console_session.verify(_key(request), request.cookies.get(COOKIE))
    if found is None:
        raise SignInRequired
    return found


Signed = Annotated[ConsoleSession, Depends(signed_in)]


def _render(
    request: Request, template: str, signed: ConsoleSession | None, **context: Any
) -> HTMLResponse:
    csrf = signed.csrf_token(_key(request)) if signed else None
    return templates.TemplateResponse(
        request, template, {"csrf": csrf, "signed_in": signed is not None, **context}
    )


@router.get("/login")
async def login_page(request: Request, error: str | None = None) -> HTMLResponse:
    return _render(request, "login.html", None, error=error)


@router.post("/login")
async def login(request: Request, token: Annotated[str, Form(max_length=512)]) -> Response:
    if not console_session.token_is_admin(token.strip(), request.app.state.admin_token):
        # The ingest token is refused like any other: it may push, never operate.
        return _render(request, "login.html", None, error="This token cannot sign in.")
    _, cookie = console_session.issue(_key(request))
    response = RedirectResponse("/console", status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=LIFETIME_SECONDS,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request, signed: Signed, csrf: Annotated[str, Form()]) -> Response:
    _check_csrf(request, signed, csrf)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("")
async def overview_page(request: Request, signed: Signed, session: SessionDep) -> HTMLResponse:
    now = datetime.now(UTC)
    health = DistributionConfig.from_settings(request.app.state.settings).health
    return _render(
        request,
        "overview.html",
        signed,
        kinds=await overview.tickets_by_kind(session),
        pushes=await overview.recent_pushes(session, now=now),
        backends=await registry.overview(session, now=now, health=health),
        now=now,
    )


class CsrfRejected(Exception):
    """A console POST without the session's CSRF token."""


def _check_csrf(request: Request, signed: ConsoleSession, presented: str | None) -> None:
    if not console_session.csrf_ok(_key(request), signed, presented):
        raise CsrfRejected


def install_console(app: FastAPI) -> None:
    """Mount the console's pages, its stylesheet and its redirects."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    async def to_sign_in(_: Request, __: Exception) -> Response:
        return RedirectResponse("/console/login", status_code=303)

    async def refused(request: Request, __: Exception) -> Response:
        return _render(request, "login.html", None, error="The form expired; sign in again.")

    app.add_exception_handler(SignInRequired, to_sign_in)
    app.add_exception_handler(CsrfRejected, refused)
