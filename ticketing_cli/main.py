"""`ticketing`: one command line for every process of the system.

ticketing wm --port 8000          the workflow manager
ticketing be --port 8101          a backend instance (settings from BE_* variables)
ticketing emulators --port 8200   the Cherwell + SFyC emulators on one port
ticketing migrate wm|be           bring a service's database to the migration head
"""

from __future__ import annotations

import asyncio
from enum import StrEnum

import typer
import uvicorn

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


if __name__ == "__main__":
    app()
