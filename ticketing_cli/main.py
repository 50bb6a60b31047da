"""`ticketing`: one command line for every process of the system.

ticketing wm --port 8000          the workflow manager
ticketing be --port 8101          a backend instance (settings from BE_* variables)
ticketing emulators --port 8200   the Cherwell + SFyC emulators on one port
ticketing migrate wm|be           bring a service's database to the migration head
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
from enum import StrEnum
from pathlib import Path

import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from ticketing_cli.client import CSV_TYPE, JSON_TYPE, BEClient, WMClient

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


class Service(StrEnum):
    wm = "wm"
    be = "be"


HOST = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 in containers).")


@app.command()
def wm(host: str = HOST, port: int = typer.Option(8000)) -> None:
    """Run the WM service (settings from WM_* environment variables)."""
    from wm_service.main import create_app

    uvicorn.run(create_app(), host=host, port=port, log_config=None, timeout_graceful_shutdown=10)


@app.command()
def be(host: str = HOST, port: int = typer.Option(8101)) -> None:
    """Run one BE instance (settings from BE_* environment variables)."""
    from be_service.main import create_app

    uvicorn.run(create_app(), host=host, port=port, log_config=None, timeout_graceful_shutdown=10)


@app.command()
def emulators(host: str = HOST, port: int = typer.Option(8200)) -> None:
    """Run the Cherwell (/CherwellAPI) and SFyC (/services) emulators on one port."""
    from emulators.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_config=None)


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


class Kind(StrEnum):
    snr_upstream = "snr-upstream"
    us_service_group = "us-service-group"
    ds_service_group = "ds-service-group"


DATA_DIR = typer.Option(Path(".data"), help="Embedded Postgres data, logs and dev tokens.")


@app.command()
def up(
    data_dir: Path = DATA_DIR,
    wm_port: int = typer.Option(8000),
    be_ports: str = typer.Option("8101,8102", help="One port per BE instance."),
    emulator_port: int = typer.Option(8200),
    service_groups: int = typer.Option(2000, help="Size of the sample network (0: no sample)."),
) -> None:
    """Run everything: embedded Postgres, emulators, WM and BEs; push a sample network."""
    from ticketing_cli import tour
    from ticketing_cli.stack import StackLayout, start_stack

    console = Console()
    layout = StackLayout(
        wm_port=wm_port,
        be_ports=tuple(int(p) for p in be_ports.split(",") if p.strip()),
        emulator_port=emulator_port,
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with console.status("Starting Postgres, emulators, WM and BEs…"):
        stack = start_stack(data_dir, layout)
    try:
        wm, bes, emulator = tour.clients(stack)
        tour.wait_for_backends(wm, len(bes))
        if service_groups > 0:
            pushes = tour.push_sample(wm, console, service_groups=service_groups)
            expected = sum(
                p["tickets"]["opened"] + p["tickets"]["updated"] + p["tickets"]["cleared"]
                for p in pushes
            )
            per_be = tour.follow_tickets(bes, expected, console)
            for table in tour.summary_tables(pushes, per_be, emulator.stats()):
                console.print(table)
        console.print(tour.access_table(stack))
        stopping.wait()
    except KeyboardInterrupt:
        pass
    finally:
        with console.status("Stopping every process started…"):
            stack.stop()
        console.print("Stopped.")


def _dev_tokens(data_dir: Path) -> dict[str, str]:
    path = data_dir / "dev-tokens.json"
    return json.loads(path.read_text()) if path.exists() else {}


@app.command()
def push(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSON or CSV file."),
    kind: Kind = typer.Option(..., "--kind", "-k"),
    wm_url: str = typer.Option("http://127.0.0.1:8000", envvar="WM_URL"),
    token: str | None = typer.Option(None, envvar="WM_INGEST_TOKEN", help="Default: dev token."),
    aggregation_id: str | None = typer.Option(None, help="CSV only (JSON carries its own)."),
    generated_at: str | None = typer.Option(None, help="CSV only, ISO 8601."),
    data_dir: Path = DATA_DIR,
) -> None:
    """Push one aggregation file to the WM and print what it did."""
    token = token or _dev_tokens(data_dir).get("wm_ingest")
    if not token:
        raise typer.BadParameter("no token: set WM_INGEST_TOKEN or run `ticketing up` first")
    payload = file.read_bytes()
    is_csv = file.suffix.lower() == ".csv"
    params = None
    if is_csv:
        if not (aggregation_id and generated_at):
            raise typer.BadParameter("a CSV push needs --aggregation-id and --generated-at")
        params = {"aggregation_id": aggregation_id, "generated_at": generated_at}
    client = WMClient(wm_url, admin_token=token, ingest_token=token)
    with Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn()) as progress:
        task = progress.add_task("push", total=len(payload))
        result = client.push(
            kind.value,
            payload,
            content_type=CSV_TYPE if is_csv else JSON_TYPE,
            params=params,
            on_progress=lambda n: progress.advance(task, n),
        )
    Console().print_json(data=result)


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
    console = Console()
    wm_table = Table(title=f"WM {wm_url}")
    wm_table.add_column("state")
    wm_table.add_column("tickets", justify="right")
    for state, count in wm.get("/api/v1/tickets", limit=1)["counts"].items():
        wm_table.add_row(state, str(count))
    console.print(wm_table)
    be_table = Table(title="BEs")
    for column in ("BE", "available", "assigned", "pending", "delivered", "statuses on the BE"):
        be_table.add_column(column)
    for backend in wm.backends():
        be = BEClient(backend["url"], be_token or dev.get("be_admin", ""))
        try:
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(be_status_counts(be).items()))
        except Exception as exc:  # an unreachable BE is a row, not a crash
            counts = f"unreachable ({type(exc).__name__})"
        be_table.add_row(
            backend["name"],
            str(backend["available"]),
            str(backend["tickets"]["assigned"]),
            str(backend["tickets"]["pending"]),
            str(backend["tickets"]["delivered"]),
            counts,
        )
    console.print(be_table)


@app.command()
def sample(
    out: Path = typer.Option(Path("sample"), help="Folder to write the files into."),
    service_groups: int = typer.Option(2000),
) -> None:
    """Write the sample network's topology and three aggregations as JSON files."""
    from ticketing_cli import sample_network

    network = sample_network.build_network(service_groups=service_groups)
    out.mkdir(parents=True, exist_ok=True)
    (out / "topology.json").write_text(
        json.dumps({"elements": sample_network.topology_elements(network)})
    )
    for kind in sample_network.KINDS:
        (out / f"{kind}.json").write_text(json.dumps(sample_network.aggregation(network, kind)))
    typer.echo(f"wrote topology.json and {len(sample_network.KINDS)} aggregations to {out}/")


if __name__ == "__main__":
    app()
