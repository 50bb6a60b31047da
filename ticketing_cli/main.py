"""`ticketing`: one command line for every process of the system.

Every day: `up` (everything on embedded defaults, with a sample network), `status`,
`push FILE`, `sample`, `maintenance add|list|import|end`. Deployments: `wm`, `be`,
`emulators` (one process each, settings from WM_*, BE_*, EMULATOR_* variables) and
`migrate wm|be`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shutil
import signal
import sys
import threading
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from ticketing_cli import maintenance, operate, serve
from ticketing_cli.client import CSV_TYPE, JSON_TYPE, ApiError, BEClient, WMClient
from ticketing_cli.common import DATA_DIR
from ticketing_cli.common import console as _console
from ticketing_cli.common import dev_tokens as _dev_tokens
from ticketing_cli.common import one_line_errors as _one_line_errors
from wm_service import kinds

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_enable=False
)
app.add_typer(maintenance.app, name="maintenance")
operate.register(app)


class Service(StrEnum):
    wm = "wm"
    be = "be"


HOST = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 in containers).")


def _serve(service: str, host: str, port: int) -> None:
    """Hand this process over to the lean server (ticketing_cli/serve.py): same PID and
    environment, without this command line's libraries in the service's memory."""
    command = serve.argv(service, host, port)
    sys.stdout.flush()  # (exec drops what is still buffered)
    sys.stderr.flush()
    os.execv(command[0], command)  # noqa: S606 (our own interpreter and module)


@app.command()
def wm(host: str = HOST, port: int = typer.Option(8000)) -> None:
    """Run the WM service (settings from WM_* environment variables)."""
    _serve("wm", host, port)


@app.command()
def be(host: str = HOST, port: int = typer.Option(8101)) -> None:
    """Run one BE instance (settings from BE_* environment variables)."""
    _serve("be", host, port)


@app.command()
def emulators(host: str = HOST, port: int = typer.Option(8200)) -> None:
    """Run the Cherwell (/CherwellAPI) and SFyC (/services) emulators on one port."""
    _serve("emulators", host, port)


@app.command()
def migrate(service: Service) -> None:
    """Migrate a service's database (its *_DATABASE_URL, or the embedded one) to head."""
    from ticketing_common.db import resolve_database_url
    from ticketing_common.embedded_pg import stop
    from ticketing_common.migrate import upgrade_to_head

    if service is Service.wm:
        from wm_service.config import WMSettings

        wm_settings = WMSettings()
        configured, data_dir, database = (
            wm_settings.database_url,
            wm_settings.data_dir,
            wm_settings.database_name,
        )
    else:
        from be_service.config import BESettings

        be_settings = BESettings()
        configured, data_dir, database = (
            be_settings.database_url,
            be_settings.data_dir,
            be_settings.database_name,
        )

    async def run() -> None:
        secret = configured.get_secret_value() if configured else None
        url, started = await resolve_database_url(secret, data_dir=data_dir, database=database)
        try:
            await upgrade_to_head(service.value, url)
        finally:
            if started is not None:
                stop(started)

    asyncio.run(run())
    typer.echo(f"{service.value}: database at migration head")


@app.command()
def up(
    data_dir: Path = DATA_DIR,
    wm_port: int = typer.Option(8000, help="Port of the WM."),
    be_ports: str = typer.Option(
        "8101,8102", help="Comma-separated ports, one BE instance per port (be1, be2, …)."
    ),
    emulator_port: int = typer.Option(8200, help="Port of the Cherwell + SFyC emulators."),
    service_groups: int = typer.Option(2000, help="Size of the sample network (0: no sample)."),
    fresh: bool = typer.Option(
        False, "--fresh", help="Delete the data folder first (databases, tokens, logs)."
    ),
) -> None:
    """Run everything until Ctrl-C (or SIGTERM): embedded Postgres, emulators, WM and BEs.

    Pushes a generated sample network and shows its tickets reaching both platforms. The data
    folder (databases, run-time settings, dev tokens, logs) is kept between runs; the
    emulators keep their records in memory only, so start with --fresh for a clean slate.
    """
    from ticketing_cli import tour
    from ticketing_cli.stack import StackLayout, start_stack

    console = _console()
    layout = StackLayout(
        wm_port=wm_port,
        be_ports=tuple(int(p) for p in be_ports.split(",") if p.strip()),
        emulator_port=emulator_port,
    )
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    stopping = threading.Event()
    # Both signals stop the system the same way, also when started in the background
    # (where a shell may have set SIGINT to be ignored).
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda *_: stopping.set())
    with _one_line_errors(), console.status("Starting Postgres, emulators, WM and BEs…"):
        stack = start_stack(data_dir, layout)
    try:
        wm, bes, emulator = tour.clients(stack)
        tour.wait_for_backends(wm, len(bes))
        tour.warn_if_paused(bes, console)
        if service_groups > 0:
            before = tour.finished_revisions(bes)
            pushes = tour.push_sample(wm, console, service_groups=service_groups)
            expected = sum(
                p["tickets"]["opened"] + p["tickets"]["updated"] + p["tickets"]["cleared"]
                for p in pushes
            )
            per_be = tour.follow_tickets(
                bes, expected, console, already_finished=before, stopping=stopping
            )
            for table in tour.summary_tables(pushes, per_be, emulator.stats()):
                console.print(table)
        console.print(tour.access_table(stack))
        stopping.wait()
    finally:
        with console.status("Stopping every process started…"):
            stack.stop()
        console.print("Stopped.")


def _known_kind(value: str) -> str:
    if value not in kinds.names():
        raise typer.BadParameter(f"unknown kind {value!r}; one of {', '.join(kinds.names())}")
    return value


@app.command()
def push(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSON or CSV file."),
    kind: str | None = typer.Option(
        None,
        "--kind",
        "-k",
        parser=_known_kind,
        help=f"One of {', '.join(kinds.names())}. Default: the kind named in the file name.",
    ),
    wm_url: str = typer.Option("http://127.0.0.1:8000", envvar="WM_URL"),
    token: str | None = typer.Option(None, envvar="WM_INGEST_TOKEN", help="Default: dev token."),
    aggregation_id: str | None = typer.Option(
        None, help="CSV only (JSON carries its own): the export's unique id; a resend is a no-op."
    ),
    generated_at: str | None = typer.Option(
        None, help="CSV only: when the export was made, ISO 8601 with zone (2026-12-01T12:00Z)."
    ),
    data_dir: Path = DATA_DIR,
) -> None:
    """Push one aggregation file to the WM and print what it did."""
    kind = _push_kind(file, kind)
    token = token or _dev_tokens(data_dir).get("wm_ingest")
    if not token:
        raise typer.BadParameter("no token: set WM_INGEST_TOKEN or run `ticketing up` first")
    payload = file.read_bytes()
    is_csv = file.suffix.lower() == ".csv"
    params = None
    if is_csv:
        if not (aggregation_id and generated_at):
            raise typer.BadParameter(
                "a CSV file does not say which export it is nor when it was made: add "
                "--aggregation-id <the export's unique id> --generated-at <its time, ISO 8601 "
                "with zone>, e.g. --aggregation-id snr-2026-12-01T12:00 "
                "--generated-at 2026-12-01T12:00:00Z"
            )
        params = {"aggregation_id": aggregation_id, "generated_at": generated_at}
    client = WMClient(wm_url, admin_token=token, ingest_token=token)
    with (
        _one_line_errors(),
        Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn()) as progress,
    ):
        task = progress.add_task("push", total=len(payload))
        result = client.push(
            kind,
            payload,
            content_type=CSV_TYPE if is_csv else JSON_TYPE,
            params=params,
            on_progress=lambda n: progress.advance(task, n),
        )
    _console().print_json(data=result)


def _push_kind(file: Path, given: str | None) -> str:
    """The kind to push as: a file named after another kind is refused, not misread."""
    named = [k for k in kinds.names() if k in file.name]
    if given is None:
        if len(named) != 1:
            raise typer.BadParameter("say which aggregation it is: --kind", param_hint="--kind")
        return named[0]
    if named and given not in named:
        raise typer.BadParameter(
            f"the file is named for {named[0]}, not {given}", param_hint="--kind"
        )
    return given


@app.command()
def status(
    wm_url: str = typer.Option("http://127.0.0.1:8000", envvar="WM_URL"),
    wm_token: str | None = typer.Option(None, envvar="WM_ADMIN_TOKEN"),
    be_token: str | None = typer.Option(None, envvar="BE_ADMIN_TOKEN"),
    data_dir: Path = DATA_DIR,
) -> None:
    """Tickets by state on the WM and on every registered BE, as tables."""
    from ticketing_cli.tour import be_status_counts

    dev = _dev_tokens(data_dir)
    wm = WMClient(wm_url, admin_token=wm_token or dev.get("wm_admin", ""))
    console = _console()
    with _one_line_errors():
        wm_counts = wm.get("/api/v1/tickets", limit=1)["counts"]
        backends = wm.backends()
    wm_table = Table(title=f"WM {wm_url}")
    wm_table.add_column("state")
    wm_table.add_column("tickets", justify="right")
    for state, count in wm_counts.items():
        wm_table.add_row(state, str(count))
    console.print(wm_table)
    be_table = Table(title="BEs")
    for column in (
        "BE",
        "available",
        "processing",
        "assigned",
        "pending",
        "delivered",
        "statuses on the BE",
        "reports to the WM",
    ):
        be_table.add_column(column)
    for backend in backends:
        be = BEClient(backend["url"], be_token or dev.get("be_admin", ""))
        try:
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(be_status_counts(be).items()))
            processing = "on" if be.get("/api/v1/settings")["processing_enabled"] else "OFF"
        except (ApiError, httpx.HTTPError) as exc:  # an unreachable BE is a row, not a crash
            counts, processing = f"unreachable ({type(exc).__name__})", "?"
        be_table.add_row(
            backend["name"],
            str(backend["available"]),
            processing,
            str(backend["tickets"]["assigned"]),
            str(backend["tickets"]["pending"]),
            str(backend["tickets"]["delivered"]),
            counts,
            _outcome_reports(backend.get("health")),
        )
    console.print(be_table)


def _outcome_reports(health: dict[str, Any] | None) -> str:
    """A BE's outcome reports to the WM as its last heartbeat told them ("?" from an older
    BE, which does not say)."""
    health = health or {}
    waiting, refused = health.get("reports_waiting"), health.get("reports_refused")
    if waiting is None:
        return "?"
    return f"{waiting} waiting" + (f", {refused} REFUSED" if refused else "")


@app.command()
def sample(
    out: Path = typer.Option(Path(".data/sample"), help="Folder to write the files into."),
    service_groups: int = typer.Option(2000),
) -> None:
    """Write the sample network's topology and one aggregation per kind as JSON files."""
    from ticketing_cli import sample_network

    network = sample_network.build_network(service_groups=service_groups)
    out.mkdir(parents=True, exist_ok=True)
    (out / "topology.json").write_text(
        json.dumps({"elements": sample_network.topology_elements(network)})
    )
    for kind in sample_network.KINDS:
        (out / f"{kind}.json").write_text(json.dumps(sample_network.aggregation(network, kind)))
    typer.echo(f"wrote topology.json and {len(sample_network.KINDS)} aggregations to {out}/")


def _reflow_help(group: typer.Typer) -> None:
    """Each paragraph of the help texts of `group` and of its commands on one line: Typer
    keeps a docstring's line breaks and Rich wraps the lines again at the terminal's width,
    so an 80-column terminal showed every long paragraph ragged ("The data" / "folder ...")."""
    # Only texts given: Typer tells a help never given from one set to None.
    if isinstance(group.info.help, str):
        group.info.help = _one_line_paragraphs(group.info.help)
    for command in group.registered_commands:
        text = command.help or inspect.getdoc(command.callback)
        if text:
            command.help = _one_line_paragraphs(text)
    for subgroup in group.registered_groups:
        if subgroup.typer_instance is not None:
            _reflow_help(subgroup.typer_instance)


def _one_line_paragraphs(text: str) -> str:
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n"))


_reflow_help(app)

if __name__ == "__main__":
    app()
