"""/console: the NOC console's pages (server-rendered, no JavaScript needed) and its sign-in.

Thin like the API routes: check the session (and the CSRF token on every POST), call the
same service functions the API uses, render a template.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from ticketing_common.errors import (
    DATABASE_ERRORS,
    database_error_handler,
    is_database_unavailable,
    log_database_unavailable,
)
from ticketing_common.text import NUL
from wm_service.console import session as console_session
from wm_service.console.session import COOKIE, LIFETIME_SECONDS, ConsoleSession
from wm_service.deps import SessionDep
from wm_service.distribution import control, registry
from wm_service.distribution.control import ControlRequest
from wm_service.distribution.schemas import BACKEND_NAME_PATTERN
from wm_service.distribution.worker import DistributionConfig
from wm_service.services import overview
from wm_service.services import tickets as tickets_service
from wm_service.services.tickets import TicketFilters

HERE = FilePath(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/console", include_in_schema=False)
# While the WM's database is away, a console page says so and reloads itself this often.
UNAVAILABLE_RETRY_SECONDS = 5


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
        stages=await overview.tickets_by_stage(session),
        pushes=await overview.recent_pushes(session, now=now),
        backends=await registry.overview(session, now=now, health=health),
        now=now,
    )


@router.get("/errors")
async def errors_page(
    request: Request,
    signed: Signed,
    session: SessionDep,
    kind: str | None = None,
    market: str | None = None,
) -> HTMLResponse:
    filters = TicketFilters(stage="error", kind=kind or None, market=market or None)
    page = await tickets_service.list_tickets(session, filters=filters, limit=200, cursor=None)
    return _render(
        request, "errors.html", signed, tickets=page.items, kind=kind or "", market=market or ""
    )


@router.get("/tickets")
async def tickets_page(
    request: Request, signed: Signed, session: SessionDep, q: str | None = None
) -> HTMLResponse:
    found: list[Any] = []
    query = (q or "").strip()[:200]
    if query and NUL not in query:
        # One box for what an operator has in hand: an entity, an incident or an OT number.
        for filters in (
            TicketFilters(entity_id=query),
            TicketFilters(incident=query[:64]),
            TicketFilters(work_order=query[:64]),
        ):
            page = await tickets_service.list_tickets(
                session, filters=filters, limit=50, cursor=None
            )
            found = [*found, *(t for t in page.items if t.id not in {f.id for f in found})]
    return _render(request, "tickets.html", signed, q=query, tickets=found)


@router.get("/tickets/{ticket_id}")
async def ticket_page(
    request: Request, signed: Signed, session: SessionDep, ticket_id: uuid.UUID
) -> HTMLResponse:
    detail = await tickets_service.get_ticket(session, ticket_id=ticket_id)
    held = await control.ticket_attempts(request.app.state.sessionmaker, ticket_id=ticket_id)
    return _render(request, "ticket.html", signed, ticket=detail, attempts=held)


@router.post("/tickets/{ticket_id}/retry")
async def retry_ticket(
    request: Request,
    signed: Signed,
    ticket_id: uuid.UUID,
    csrf: Annotated[str, Form()],
    actor: Annotated[str, Form(min_length=1, max_length=200)],
) -> Response:
    _check_csrf(request, signed, csrf)
    body = ControlRequest(actor=actor)
    await control.carry_out(
        request.app.state.sessionmaker, action="retry-ticket", request=body, ticket_id=ticket_id
    )
    return RedirectResponse(f"/console/tickets/{ticket_id}", status_code=303)


@router.post("/errors/retry")
async def retry_errors(
    request: Request,
    signed: Signed,
    csrf: Annotated[str, Form()],
    actor: Annotated[str, Form(min_length=1, max_length=200)],
    kind: Annotated[str, Form(max_length=64)] = "",
    market: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    _check_csrf(request, signed, csrf)
    body = ControlRequest(actor=actor, kind=kind or None, market=market or None)
    await control.carry_out(request.app.state.sessionmaker, action="retry-errors", request=body)
    return RedirectResponse("/console/errors", status_code=303)


@router.post("/backends/{name}/{action}")
async def switch_backend(
    request: Request,
    signed: Signed,
    name: Annotated[str, Path(pattern=BACKEND_NAME_PATTERN)],
    action: Literal["pause", "resume"],
    csrf: Annotated[str, Form()],
    actor: Annotated[str, Form(min_length=1, max_length=200)],
) -> Response:
    _check_csrf(request, signed, csrf)
    body = ControlRequest(actor=actor, backend=name)
    await control.carry_out(request.app.state.sessionmaker, action=action, request=body)
    return RedirectResponse("/console", status_code=303)


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

    async def database_away(request: Request, exc: Exception) -> Response:
        # A page for people, not the API's JSON: what is wrong, and it reloads by itself.
        if not request.url.path.startswith("/console") or not is_database_unavailable(exc):
            return await database_error_handler(request, exc)
        log_database_unavailable(request, exc)
        page = _render(request, "unavailable.html", None, retry_seconds=UNAVAILABLE_RETRY_SECONDS)
        page.status_code = 503
        page.headers["Retry-After"] = str(UNAVAILABLE_RETRY_SECONDS)
        return page

    app.add_exception_handler(SignInRequired, to_sign_in)
    app.add_exception_handler(CsrfRejected, refused)
    for database_error in DATABASE_ERRORS:
        app.add_exception_handler(database_error, database_away)
