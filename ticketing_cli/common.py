"""What every `ticketing` command shares: the console, one-line errors, the dev tokens."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import typer
from rich.console import Console

from ticketing_cli.client import ApiError
from ticketing_cli.stack import PortInUse

DATA_DIR = typer.Option(Path(".data"), help="Embedded Postgres data, logs and dev tokens.")


def console() -> Console:
    # Rich assumes 80 columns when output is not a terminal (a log file, CI): too narrow
    # for the summary tables.
    return Console() if sys.stdout.isatty() else Console(width=140)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A refused request or an unreachable service is one clear line and exit 1."""
    try:
        yield
    except ApiError as exc:
        typer.secho(str(exc), err=True, fg="red")
        raise typer.Exit(1) from exc
    except httpx.HTTPError as exc:
        typer.secho(f"cannot reach the service: {exc}", err=True, fg="red")
        raise typer.Exit(1) from exc
    except PortInUse as exc:
        typer.secho(str(exc), err=True, fg="red")
        raise typer.Exit(1) from exc


def dev_tokens(data_dir: Path) -> dict[str, str]:
    """The tokens `ticketing up` wrote for a local run, if any."""
    path = data_dir / "dev-tokens.json"
    return json.loads(path.read_text()) if path.exists() else {}
