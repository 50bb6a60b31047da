"""Self-registration on the WM: PUT at start-up and every heartbeat, never fatal."""

from __future__ import annotations

import threading

from fastapi import FastAPI, Request

from tests.be.conftest import INTAKE_TOKEN, wait_until
from tests.support.servers import free_port, serve_in_thread


def _fake_wm() -> tuple[FastAPI, list[dict]]:
    """A stand-in for the WM's PUT /api/v1/backends/{name} that remembers every call."""
    app = FastAPI()
    calls: list[dict] = []
    lock = threading.Lock()

    @app.put("/api/v1/backends/{name}")
    async def put_backend(name: str, request: Request) -> dict[str, str]:
        with lock:
            calls.append(
                {
                    "name": name,
                    "authorization": request.headers.get("authorization"),
                    "body": await request.json(),
                }
            )
        return {"name": name}

    return app, calls


def test_be_registers_on_the_wm_and_keeps_beating(make_be):
    """The BE PUTs its URL, intake token and health with the WM token, every heartbeat."""
    app, calls = _fake_wm()
    with serve_in_thread(app) as wm:
        make_be(
            name="be-7",
            public_url="http://127.0.0.1:9107",
            wm_url=wm.url,
            wm_token="wm-backend-token",
            heartbeat_seconds=0.2,
            processing_enabled=False,
        )
        wait_until(lambda: len(calls) >= 2, what="two registrations")
    health = calls[0]["body"].pop("health")
    # The control token goes to the WM like the intake token (unset here: a random one).
    assert len(calls[0]["body"].pop("control_token")) >= 32
    assert calls[0] == {
        "name": "be-7",
        "authorization": "Bearer wm-backend-token",
        "body": {"url": "http://127.0.0.1:9107", "intake_token": INTAKE_TOKEN},
    }
    assert [p["platform"] for p in health["platforms"]] == ["cherwell", "sfyc"]
    assert {p["circuit"] for p in health["platforms"]} == {"closed"}
    assert health["processing_enabled"] is False
    assert health["revisions"] == {} and health["oldest_received_age_seconds"] == 0
    assert (health["reports_waiting"], health["reports_refused"]) == (0, 0)


def test_an_unreachable_wm_is_retried_without_stopping_the_be(make_be, emulator):
    """With no WM listening the BE still serves; it registers once the WM comes up."""
    port = free_port()
    be = make_be(wm_url=f"http://127.0.0.1:{port}", wm_token="t", heartbeat_seconds=0.2)
    assert be.client.get("/readyz").status_code == 200
    app, calls = _fake_wm()
    with serve_in_thread(app, port=port):
        wait_until(lambda: calls, what="a registration after the WM started")
    assert calls[0]["body"]["url"] == be.settings.public_url
