"""Alertmanager's webhook receiver built the way our platform emulators are built.

`bench/alertmanager.py`'s default receiver is a bare asyncio protocol that costs next to
nothing, while in our runs the emulators (FastAPI on uvicorn, one request per 100 tickets)
share the two cores with what they measure. This one is the symmetric yardstick: the same
stack and process settings as `ticketing emulators`, parsing each webhook's JSON and keeping
its alerts in memory as the emulators keep incidents, so Alertmanager pays for a receiver of
its one request per group as our pipeline pays for its platforms.

    python -m bench.webhook_receiver --port P
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from fastapi import Body, FastAPI

from ticketing_common.runtime import settle_allocator, settle_garbage_collector


def create_app() -> FastAPI:
    app = FastAPI()
    groups: dict[str, list[dict[str, Any]]] = {}

    @app.post("/")
    async def webhook(payload: dict[str, Any] = Body(...)) -> dict[str, int]:
        groups[payload["groupKey"]] = payload["alerts"]
        return {"groups": len(groups)}

    @app.get("/count")
    async def count() -> dict[str, int]:
        return {"groups": len(groups)}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settle_garbage_collector()
    settle_allocator()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
