"""`ticketing maintenance add|list|import|end`: planned work on the WM, from a terminal.

Speaks /api/v1/maintenance-windows with the WM admin token. Times without an offset are
read in the window's time zone (--tz, America/Mexico_City by default), as operators say them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from ticketing_cli.client import CSV_TYPE, WMClient
from ticketing_cli.common import DATA_DIR, console, dev_tokens, one_line_errors

app = typer.Typer(no_args_is_help=True, help=__doc__)
URL = "/api/v1/maintenance-windows"
DEFAULT_TZ = "America/Mexico_City"

WM_URL = typer.Option("http://127.0.0.1:8000", envvar="WM_URL")
TOKEN = typer.Option(None, envvar="WM_ADMIN_TOKEN", help="Default: dev token of `up`.")
BY = typer.Option(..., "--by", envvar="TICKETING_OPERATOR", help="Who does it (recorded).")


@app.callback()
def connect(
    ctx: typer.Context, wm_url: str = WM_URL, token: str | None = TOKEN, data_dir: Path = DATA_DIR
) -> None:
    """Planned work on the WM: windows that hold tickets back (admin token)."""
    token = token or dev_tokens(data_dir).get("wm_admin")
    if not token:
        raise typer.BadParameter("no token: set WM_ADMIN_TOKEN or run `ticketing up` first")
    ctx.obj = WMClient(wm_url, admin_token=token)


def _client(ctx: typer.Context) -> WMClient:
    client: WMClient = ctx.obj
    return client


def local_instant(text: str, tz: str) -> str:
    """ISO 8601 with offset; a time without one is wall-clock time in `tz`."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 time: {text!r}") from exc
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(tz))
    return at.isoformat()


def window_body(
    scope: dict[str, str | None],
    *,
    start: str,
    end: str,
    tz: str,
    every: str | None,
    reason: str,
    change: str | None,
    by: str,
) -> dict[str, Any]:
    body: dict[str, Any] = {k: v for k, v in scope.items() if v}
    body |= {
        "starts_at": local_instant(start, tz),
        "ends_at": local_instant(end, tz),
        "timezone": tz,
        "reason": reason,
        "created_by": by,
    }
    if every:
        body["recurrence"] = every if "=" in every else f"FREQ={every.upper()}"
    if change:
        body["change_ref"] = change
    return body


@app.command()
def add(
    ctx: typer.Context,
    start: str = typer.Option(..., help="e.g. 2026-12-05T23:00 (in --tz) or with an offset."),
    end: str = typer.Option(..., help="End of the (first) occurrence."),
    reason: str = typer.Option(...),
    by: str = BY,
    market: str | None = None,
    hub: str | None = None,
    ccap: str | None = None,
    service_group: str | None = None,
    entity: str | None = None,
    every: str | None = typer.Option(None, help="daily, weekly, or an RRULE (FREQ=WEEKLY;…)."),
    tz: str = typer.Option(DEFAULT_TZ, help="IANA time zone of the window."),
    change: str | None = typer.Option(None, help="The change ticket (e.g. CHG0012345)."),
) -> None:
    """Add a maintenance window (at least one of --market/--hub/--ccap/--service-group/--entity)."""
    scope = {
        "market": market,
        "hub": hub,
        "ccap": ccap,
        "service_group": service_group,
        "entity_id": entity,
    }
    body = window_body(
        scope, start=start, end=end, tz=tz, every=every, reason=reason, change=change, by=by
    )
    with one_line_errors():
        created = _client(ctx).send("POST", URL, json=body)
    typer.echo(f"window {created['id']} added ({_scope(created)})")


def _scope(window: dict[str, Any]) -> str:
    names = ("market", "hub", "ccap", "service_group", "entity_id")
    return ", ".join(f"{name} {window[name]}" for name in names if window.get(name))


@app.command("list")
def list_windows(
    ctx: typer.Context,
    active: bool = typer.Option(False, "--active", help="Only those covering right now."),
) -> None:
    """Maintenance windows, newest first."""
    with one_line_errors():
        windows = _client(ctx).get(URL, active=active)
    table = Table(title="Maintenance windows")
    for column in ("id", "scope", "starts", "ends", "every", "active", "reason", "change", "by"):
        table.add_column(column)
    for w in windows:
        ended = f" (ended {w['ended_at'][:16]})" if w["ended_at"] else ""
        table.add_row(
            str(w["id"]),
            _scope(w),
            w["starts_at"][:16],
            w["ends_at"][:16] + ended,
            w["recurrence"] or "",
            "yes" if w["active"] else "",
            w["reason"],
            w["change_ref"] or "",
            w["updated_by"],
        )
    console().print(table)


@app.command("import")
def import_windows(
    ctx: typer.Context,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV with a header."),
    by: str = BY,
) -> None:
    """Add every window of a CSV file, or none if any row is bad."""
    with one_line_errors():
        result = _client(ctx).send(
            "POST",
            f"{URL}/import",
            content=file.read_bytes(),
            params={"created_by": by},
            headers={"Content-Type": CSV_TYPE},
        )
    ids = ", ".join(str(w["id"]) for w in result["created"])
    typer.echo(f"{len(result['created'])} windows added: {ids}")


@app.command()
def end(
    ctx: typer.Context,
    window_id: int = typer.Argument(..., help="The window's id."),
    by: str = BY,
) -> None:
    """End a window now: no later occurrence; samples taken so far stay excluded."""
    with one_line_errors():
        ended = _client(ctx).send("POST", f"{URL}/{window_id}/end", json={"ended_by": by})
    typer.echo(f"window {window_id} ended at {ended['ended_at']}")
