"""Serve one service process (the WM, a BE or the emulators) with only what serving needs.

`python -m ticketing_cli.serve wm|be|emulators --host H --port P`. `ticketing wm|be|emulators`
hands its process over to this module (same PID, same environment), and `ticketing up` and
the tests start it directly, so a service never holds the command line's libraries (typer,
rich, pygments: ~6 MiB resident per process, measured on the WM) nor pays for importing them.
Nothing here may import them: a test checks it.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsError

if TYPE_CHECKING:
    from fastapi import FastAPI

# httpx imports its own command-line client (click, rich, pygments) whenever they are
# installed, and this project installs rich for `ticketing`. A None entry makes that one
# import fail, which httpx expects: it then leaves its command line out.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

# Each service's app factory; its settings come from its environment variables.
FACTORIES = {
    "wm": "wm_service.main",
    "be": "be_service.main",
    "emulators": "emulators.app",
}


def load_app(service: str) -> FastAPI:
    """Build the service's app from its environment (WM_*, BE_* or EMULATOR_* variables)."""
    app: FastAPI = importlib.import_module(FACTORIES[service]).create_app()
    return app


def settings_problems(exc: Exception) -> list[str] | None:
    """One line per invalid setting, named as the operator wrote it (its environment
    variable) with pydantic's reason; None when `exc` is not about a settings class (a bug,
    to be raised as it is). Never the value: it may be a token or a database URL with its
    password, and this goes to the service's log."""
    if isinstance(exc, ValidationError):
        settings = _settings_classes(lambda cls: cls.__name__ == exc.title)
        if not settings:
            return None
        prefix = _prefix(settings[0])
        lines = []
        for error in exc.errors(include_url=False, include_input=False):
            where, *inner = error["loc"] or ("",)
            if not where:  # a check across settings names its variables in its message
                lines.append(error["msg"].removeprefix("Value error, "))
                continue
            # The variable is the loc's first part; the rest is a path inside its JSON.
            path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in inner)
            lines.append(f"{prefix}{where}".upper() + f"{path}: {error['msg']}")
        return lines
    # pydantic-settings' own error: a list or object setting that is not JSON. It names
    # the field (not the variable) and the JSON error where it stopped (not the value).
    found = re.search(r'field "([^"]+)"', str(exc))
    if found is None:
        return None
    field = found.group(1)
    owners = _settings_classes(lambda cls: field in cls.model_fields)
    name = f"{_prefix(owners[0])}{field}".upper() if owners else field
    cause = f" ({exc.__cause__})" if exc.__cause__ else ""
    return [f"{name}: not valid JSON{cause}; list and object settings are written as JSON"]


def _settings_classes(wanted: Callable[[type[BaseSettings]], bool]) -> list[type[BaseSettings]]:
    """The loaded settings classes (WMSettings, BESettings, CherwellFields...) `wanted`."""
    found, classes = [], list(BaseSettings.__subclasses__())
    while classes:
        cls = classes.pop()
        if wanted(cls):
            found.append(cls)
        classes.extend(cls.__subclasses__())
    return found


def _prefix(cls: type[BaseSettings]) -> str:
    return str(cls.model_config.get("env_prefix", ""))


def argv(service: str, host: str, port: int) -> list[str]:
    """The command line that runs `service` with this module."""
    # -P: not the current folder first on sys.path (a uvicorn.py or an old checkout there
    # would be imported instead of the installed code).
    module = "ticketing_cli.serve"
    return [sys.executable, "-P", "-m", module, service, "--host", host, "--port", str(port)]


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ticketing_cli.serve", description=__doc__)
    parser.add_argument("service", choices=sorted(FACTORIES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args(args)

    import uvicorn

    from ticketing_common.runtime import settle_allocator, settle_garbage_collector

    try:
        app = load_app(options.service)
    except (ValidationError, SettingsError) as exc:
        problems = settings_problems(exc)
        if problems is None:
            raise
        # A readable refusal, not a traceback: which setting, and why (nothing started).
        print(f"{options.service}: invalid settings, not started:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        raise SystemExit(2) from None
    # Collector and allocator settings of ticketing_common/runtime.py, the emulators too:
    # they share the cores with what they measure, and their growing store made the
    # default collector 20 % of their CPU.
    settle_garbage_collector()
    settle_allocator()
    uvicorn.run(
        app, host=options.host, port=options.port, log_config=None, timeout_graceful_shutdown=10
    )


if __name__ == "__main__":
    main()
