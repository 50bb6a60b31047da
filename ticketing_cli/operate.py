"""`ticketing errors | retry | pause | resume`: what the NOC does from a terminal, via the WM.

`errors` lists the tickets in error across every BE with the platform's reason; `retry`
re-drives one ticket (by id) or every Error (optionally of a kind or market, or on one BE);
`pause` and `resume` switch processing on one BE or all. Every action is recorded on the WM
with the operator's name (--by, or TICKETING_OPERATOR).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ticketing_cli.client import WMClient
from ticketing_cli.common import DATA_DIR, console, dev_tokens, one_line_errors

WM_URL = typer.Option("http://127.0.0.1:8000", envvar="WM_URL")
TOKEN = typer.Option(None, envvar="WM_ADMIN_TOKEN", help="Default: dev token of `up`.")
BY = typer.Option(..., "--by", envvar="TICKETING_OPERATOR", help="Who does it (recorded).")
BACKEND = typer.Option(None, "--backend", help="One BE by name (default: every BE).")


def _client(wm_url: str, token: str | None, data_dir: Path) -> WMClient:
    token = token or dev_tokens(data_dir).get("wm_admin")
    if not token:
        raise typer.BadParameter("no token: set WM_ADMIN_TOKEN or run `ticketing up` first")
    return WMClient(wm_url, admin_token=token)


def errors(
    kind: str | None = typer.Option(None, help="Only this kind."),
    market: str | None = typer.Option(None, help="Only this market."),
    wm_url: str = WM_URL,
    token: str | None = TOKEN,
    data_dir: Path = DATA_DIR,
) -> None:
    """The tickets in error across every BE, with the failed step and the platform's reason."""
    params = {k: v for k, v in {"stage": "error", "kind": kind, "market": market}.items() if v}
    with one_line_errors():
        page = _client(wm_url, token, data_dir).get("/api/v1/tickets", limit=500, **params)
    table = Table("ticket", "entity", "kind", "BE", "failed at", "reason")
    for t in page["items"]:
        table.add_row(
            t["id"],
            t["entity_id"],
            t["kind"],
            t["backend"] or "-",
            t["last_error_operation"] or "-",
            t["last_error"] or "-",
        )
    console().print(table)
    console().print(f"{len(page['items'])} ticket(s) in error")


def retry(
    ticket_id: uuid.UUID | None = typer.Argument(None, help="One ticket (default: every Error)."),
    kind: str | None = typer.Option(None, help="Only Errors of this kind."),
    market: str | None = typer.Option(None, help="Only Errors of this market."),
    backend: str | None = BACKEND,
    by: str = BY,
    wm_url: str = WM_URL,
    token: str | None = TOKEN,
    data_dir: Path = DATA_DIR,
) -> None:
    """Re-drive Error revisions (fresh retry counts) on the BEs that hold them."""
    body: dict[str, str | None]
    if ticket_id:
        path, body = f"/api/v1/tickets/{ticket_id}/retry", {"actor": by}
    else:
        path = "/api/v1/control/retry-errors"
        body = {"actor": by, "backend": backend, "kind": kind, "market": market}
    _act(_client(wm_url, token, data_dir), path, body)


def _switch(action: str, summary: str) -> Callable[..., None]:
    """`ticketing pause` and `ticketing resume`: the same call but for the action."""

    def command(
        backend: str | None = BACKEND,
        by: str = BY,
        wm_url: str = WM_URL,
        token: str | None = TOKEN,
        data_dir: Path = DATA_DIR,
    ) -> None:
        body = {"actor": by, "backend": backend}
        _act(_client(wm_url, token, data_dir), f"/api/v1/control/{action}", body)

    command.__name__, command.__doc__ = action, summary
    return command


pause = _switch(
    "pause", "Stop sending to the platforms on one BE or all (tickets are still recorded)."
)
resume = _switch("resume", "Send to the platforms again on one BE or all.")


def _act(client: WMClient, path: str, body: dict[str, Any]) -> None:
    with one_line_errors():
        result = client.send("POST", path, json={k: v for k, v in body.items() if v is not None})
    failed = 0
    for name, answer in result["backends"].items():
        if answer["ok"]:
            done = f", {answer['retried']} re-driven" if answer.get("retried") is not None else ""
            console().print(f"{name}: ok{done}")
        else:
            failed += 1
            console().print(f"{name}: [red]{answer['error']}[/red]")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    for command in (errors, retry, pause, resume):
        app.command()(command)
