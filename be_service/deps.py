"""FastAPI dependencies of the BE: the request's session (the transaction boundary), auth."""

from __future__ import annotations

from fastapi import BackgroundTasks, Query, Request
from pydantic import SecretStr

from be_service.config import BESettings
from ticketing_common.auth import require_token
from ticketing_common.text import NUL_FREE

# The request's session, shared with the WM: one commit point, 503 when the commit fails.
from ticketing_common.web import SessionDep as SessionDep
from ticketing_common.web import wake_after_response


def get_settings(request: Request) -> BESettings:
    settings: BESettings = request.app.state.settings
    return settings


def _intake_token(request: Request) -> SecretStr:
    return get_settings(request).intake_token


def _admin_token(request: Request) -> SecretStr:
    return get_settings(request).admin_token


def _control_token(request: Request) -> SecretStr:
    return get_settings(request).control_token


def _metrics_token(request: Request) -> SecretStr:
    return get_settings(request).metrics_token


require_intake = require_token(_intake_token)
require_admin = require_token(_admin_token)
# The WM, acting for an operator, may pause, resume and re-drive (BE_CONTROL_TOKEN).
require_control = require_token(_admin_token, _control_token)
# Prometheus gets a token that opens nothing else; operators may read /metrics too.
require_metrics = require_token(_metrics_token, _admin_token)

# Who asks for a change the BE keeps no other record of (its log line names them).
Actor = Query(..., min_length=1, max_length=200, pattern=NUL_FREE, description="who asks")


def wake_workers(request: Request, background: BackgroundTasks) -> None:
    """The request may make revisions claimable: an idle worker looks at once, after the
    commit (pipeline/worker.py, WorkerWakeups)."""
    wake_after_response(background, request.app.state.worker_wakeups.bell.ring)
