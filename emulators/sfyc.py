"""SFyC emulator (`/services`), Salesforce-style: OAuth token, WorkOrder upsert, query, read.

Answers in Salesforce's own shapes (error lists, UpsertResults, `Sforce-Limit-Info`); the
data lives in `sfyc_store`. The API version is v60.0 (docs/contracts.md §3).
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from emulators.faults import FaultDecision
from emulators.sfyc_store import (
    ORG_ID,
    STANDARD_FIELDS,
    SYSTEM_FIELDS,
    USER_ID,
    WORK_ORDER,
    SoqlError,
    parse_soql,
)
from emulators.state import (
    BadJson,
    EmulatorState,
    Handler,
    get_state,
    guarded,
    json_response,
    read_json,
)

DATA = "/services/data/v60.0"
MAX_RECORDS = 200
DAILY_API_LIMIT = 15_000
router = APIRouter(prefix="/services", tags=["SFyC emulator"])

_FAILURES = {
    401: ("INVALID_SESSION_ID", "Session expired or invalid"),
    403: ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
    404: ("NOT_FOUND", "The requested resource does not exist"),
    429: ("REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."),
    500: ("UNKNOWN_EXCEPTION", "An unexpected error occurred (emulated)."),
    503: ("SERVER_UNAVAILABLE", "Server temporarily unavailable (emulated)."),
    504: ("GATEWAY_TIMEOUT", "The upstream answer was lost (emulated)."),
}


class UpsertRequest(BaseModel):
    """Body of the sObject Collections upsert."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    all_or_none: bool = Field(default=False, alias="allOrNone")
    records: list[Any]


def errors(status_code: int, code: str, message: str) -> Response:
    """Salesforce's REST error body: a list of `{message, errorCode}`."""
    return json_response([{"message": message, "errorCode": code}], status_code)


def render_failure(status_code: int) -> Response:
    code, message = _FAILURES.get(status_code, (f"HTTP_{status_code}", "Emulated failure"))
    response = errors(status_code, code, message)
    if status_code == 401:
        response.headers["WWW-Authenticate"] = 'Token realm="SFyC"'
    return response


def render_token_failure(status_code: int) -> Response:
    """The OAuth endpoint answers in OAuth's shape, not the REST API's list."""
    error = "server_error" if status_code >= 500 else "invalid_request"
    body = {"error": error, "error_description": f"Emulated failure: HTTP {status_code}"}
    return json_response(body, status_code)


def _authorised(state: EmulatorState, request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() in {"bearer", "oauth"} and state.sfyc.touch(
        token.strip(), state.clock(), state.settings.sfyc_session_ttl_seconds
    )


async def _api(request: Request, route: str, handle: Handler) -> Response:
    """A REST API call: counted against the daily limit, authorised, faulted, limit header."""
    state = get_state(request)

    async def authorised(decision: FaultDecision) -> Response:
        if not _authorised(state, request):
            return render_failure(401)
        return await handle(decision)

    async with state.lock:
        state.sfyc.api_usage += 1
        usage = state.sfyc.api_usage
    response = await guarded(
        request, platform="sfyc", route=route, handler=authorised, render_failure=render_failure
    )
    response.headers["Sforce-Limit-Info"] = f"api-usage={usage}/{DAILY_API_LIMIT}"
    return response


def _credentials_ok(state: EmulatorState, form: dict[str, str]) -> bool:
    settings = state.settings
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if not (client_id and secret):
        return False
    if form.get("grant_type") == "password" and not (form.get("username") and form.get("password")):
        return False
    if settings.sfyc_client_secret is None:
        return True
    expected = settings.sfyc_client_secret.get_secret_value()
    return hmac.compare_digest(secret.encode(), expected.encode()) and (
        settings.sfyc_client_id in (None, client_id)
    )


@router.post("/oauth2/token", summary="OAuth2 token: client_credentials and password grants")
async def token(request: Request) -> Response:
    state = get_state(request)

    async def handle(_: FaultDecision) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        if form.get("grant_type") not in {"client_credentials", "password"}:
            body = {
                "error": "unsupported_grant_type",
                "error_description": "grant type not supported",
            }
            return json_response(body, 400)
        if not _credentials_ok(state, form):
            body = {"error": "invalid_grant", "error_description": "authentication failure"}
            return json_response(body, 400)
        async with state.lock:
            session = state.sfyc.open_session(
                form["client_id"], state.clock(), state.settings.sfyc_session_ttl_seconds
            )
            instance_url = str(request.base_url).rstrip("/")
            identity = f"{instance_url}/id/{ORG_ID}/{USER_ID}"
            issued_at = str(int(state.clock() * 1000))
            signature = state.sfyc.sign(identity, issued_at)
        return json_response(
            {
                "access_token": session.access_token,
                "instance_url": instance_url,
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
                "signature": signature,
                "scope": "api",
            }
        )

    return await guarded(
        request,
        platform="sfyc",
        route="POST /services/oauth2/token",
        handler=handle,
        render_failure=render_token_failure,
        is_token=True,
    )


@router.patch(
    "/data/v60.0/composite/sobjects/WorkOrder/{external_id_field}",
    summary="Upsert up to 200 WorkOrders by an external id field",
)
async def upsert(request: Request, external_id_field: str) -> Response:
    state = get_state(request)

    async def handle(decision: FaultDecision) -> Response:
        field = state.sfyc.external_field(external_id_field)
        if field is None:
            return render_failure(404)
        try:
            body = UpsertRequest.model_validate(await read_json(request))
        except BadJson as exc:
            return errors(400, "JSON_PARSER_ERROR", f"Invalid JSON: {exc}")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            return errors(400, "JSON_PARSER_ERROR", f"{where}: {first['msg']}")
        if len(body.records) > MAX_RECORDS:
            return errors(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_RECORDS} records into this "
                "call",
            )
        rate = decision.item_error_rate
        async with state.lock:
            results = state.sfyc.upsert(
                field,
                body.records,
                all_or_none=body.all_or_none,
                fail_item=lambda: rate > 0 and state.rng.random() < rate,
                now=datetime.now(UTC),
            )
        return json_response(results)

    route = f"PATCH {DATA}/composite/sobjects/WorkOrder/{{externalIdField}}"
    return await _api(request, route, handle)


def _record_url(record_id: str) -> str:
    return f"{DATA}/sobjects/{WORK_ORDER}/{record_id}"


async def _query(request: Request) -> Response:
    state = get_state(request)

    async def handle(_: FaultDecision) -> Response:
        text = request.query_params.get("q")
        if not text:
            return errors(400, "MALFORMED_QUERY", "A query string (q=SELECT …) is required")
        try:
            query = parse_soql(text)
        except SoqlError as exc:
            return errors(400, "MALFORMED_QUERY", f"{exc}: {text}")
        if query.sobject.casefold() != WORK_ORDER.casefold():
            message = f"sObject type '{query.sobject}' is not supported."
            return errors(400, "INVALID_TYPE", message)
        async with state.lock:
            names: list[str] = []
            for name in (*query.fields, *([query.where_field] if query.where_field else [])):
                api_name = state.sfyc.canonical(name)
                if api_name is None:
                    message = f"No such column '{name}' on entity '{WORK_ORDER}'."
                    return errors(400, "INVALID_FIELD", message)
                names.append(api_name)
            selected = names[: len(query.fields)]
            where = names[len(query.fields)] if query.where_field else None
            found = state.sfyc.select(
                where, list(query.where_values) if query.where_values is not None else None
            )
            if query.limit is not None:
                found = found[: query.limit]
            rows = [
                {
                    "attributes": {"type": WORK_ORDER, "url": _record_url(r["Id"])},
                    **{name: r.get(name) for name in selected},
                }
                for r in found
            ]
        return json_response({"totalSize": len(rows), "done": True, "records": rows})

    return await _api(request, f"GET {DATA}/query", handle)


@router.get("/data/v60.0/query", summary="SOQL subset over WorkOrder")
async def query(request: Request) -> Response:
    return await _query(request)


@router.get("/data/v60.0/query/", include_in_schema=False)
async def query_slash(request: Request) -> Response:
    """The same query resource with a trailing slash, as Salesforce accepts it."""
    return await _query(request)


@router.get("/data/v60.0/sobjects/WorkOrder/{record_id}", summary="Read one WorkOrder by Id")
async def get_work_order(request: Request, record_id: str) -> Response:
    state = get_state(request)

    async def handle(_: FaultDecision) -> Response:
        async with state.lock:
            record = state.sfyc.get(record_id)
            if record is None:
                return render_failure(404)
            shown = {name: record.get(name) for name in (*SYSTEM_FIELDS, *STANDARD_FIELDS)}
            shown.update(record)
        return json_response(
            {"attributes": {"type": WORK_ORDER, "url": _record_url(record["Id"])}, **shown}
        )

    return await _api(request, f"GET {DATA}/sobjects/WorkOrder/{{id}}", handle)


@router.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
async def not_found(path: str) -> Response:
    """Anything else under /services answers with Salesforce's NOT_FOUND list."""
    return render_failure(404)
