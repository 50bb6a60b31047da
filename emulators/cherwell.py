"""Cherwell REST emulator (`/CherwellAPI`): token, batch save, search, read by id.

Parses requests the lenient way the real ASP.NET server does (case-insensitive keys,
booleans as strings), answers in Cherwell's own shapes; the data lives in `cherwell_store`.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, ValidationError
from pydantic_core import core_schema

from emulators.cherwell_store import (
    CATALOGUE,
    OPERATORS,
    BusObDef,
    FieldDef,
    FieldWrite,
    Filter,
    SaveItem,
    SaveResult,
    token_times,
)
from emulators.faults import FaultDecision
from emulators.state import BadJson, EmulatorState, get_state, guarded, json_response, read_json

PREFIX = "/CherwellAPI"
router = APIRouter(prefix=PREFIX, tags=["Cherwell emulator"])

_DENIED = {"Message": "Authorization has been denied for this request."}
# .NET HttpStatusCode names, as Cherwell's envelope reports them.
_STATUS_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def lower_keys(value: Any) -> Any:
    """JSON with every object key lower-cased: Json.NET binds property names case-insensitively.

    This runs over every key of every save (~16 000 in a 100-incident batch), and the
    str.lower of each was most of it: the keys repeat (fieldId, value, dirty...), so their
    lower-case forms are kept (_LOWERED, bounded). Scalars are passed over without a call."""
    kind = type(value)
    if kind is dict:
        lowered = _LOWERED
        result: dict[str, Any] = {}
        for key, inner in value.items():
            lower = lowered.get(key)
            if lower is None:
                lower = key.lower()
                if len(key) <= _LOWERED_KEY_MAX and len(lowered) < _LOWERED_MAX:
                    lowered[key] = lower
            result[lower] = inner if type(inner) not in _CONTAINERS else lower_keys(inner)
        return result
    if kind is list:
        return [v if type(v) not in _CONTAINERS else lower_keys(v) for v in value]
    return value


_CONTAINERS = frozenset((dict, list))
# Key -> its lower-case form. Clients send a few dozen distinct short keys; long or
# endless ones (a hostile body) are lower-cased without being kept.
_LOWERED: dict[str, str] = {}
_LOWERED_MAX = 4096
_LOWERED_KEY_MAX = 64


class _TextSchema:
    """Where the contract says string, Json.NET also takes a number or a boolean and binds
    its text ("42", "True"). Validated inside pydantic-core, not by a Python function per
    value (a save carries ~4 000 of them); same results and the same error as `str`."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.union_schema(
            [
                core_schema.str_schema(coerce_numbers_to_str=True),
                core_schema.no_info_after_validator_function(
                    str, core_schema.bool_schema(strict=True)
                ),
            ],
            mode="left_to_right",
            custom_error_type="string_type",
        )


Text = Annotated[str, _TextSchema]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class FieldTemplateItem(_Lenient):
    field_id: str | None = Field(default=None, alias="fieldid")
    full_field_id: str | None = Field(default=None, alias="fullfieldid")
    name: str | None = None
    value: Text | None = None
    dirty: bool | None = False


class SaveRequest(_Lenient):
    bus_ob_id: str = Field(alias="busobid")
    bus_ob_rec_id: Text | None = Field(default=None, alias="busobrecid")
    bus_ob_public_id: Text | None = Field(default=None, alias="busobpublicid")
    fields: list[FieldTemplateItem] | None = None
    persist: bool | None = None

    def to_item(self) -> SaveItem:
        writes = tuple(
            FieldWrite(f.field_id or f.full_field_id, f.name, f.value or "")
            for f in self.fields or []
            if f.dirty
        )
        # Clients that omit persist get their records saved (demisto, streamline).
        persist = True if self.persist is None else self.persist
        return SaveItem(self.bus_ob_id, self.bus_ob_rec_id, self.bus_ob_public_id, writes, persist)


class BatchSaveRequest(_Lenient):
    save_requests: list[dict[str, Any]] = Field(alias="saverequests")
    stop_on_error: bool | None = Field(default=False, alias="stoponerror")


class FilterInfo(_Lenient):
    field_id: str = Field(alias="fieldid")
    operator: str
    value: Text | None = None


class SearchResultsRequest(_Lenient):
    bus_ob_id: str = Field(alias="busobid")
    filters: list[FilterInfo] | None = None
    fields: list[str] | None = None
    include_all_fields: bool | None = Field(default=False, alias="includeallfields")
    page_number: int | None = Field(default=None, alias="pagenumber")
    page_size: int | None = Field(default=None, alias="pagesize")


def envelope_error(status_code: int, code: str, message: str) -> Response:
    """Cherwell's response envelope carrying an error."""
    body = {
        "errorCode": code,
        "errorMessage": message,
        "hasError": True,
        "httpStatusCode": _STATUS_NAMES.get(status_code, str(status_code)),
    }
    return json_response(body, status_code)


def render_failure(status_code: int) -> Response:
    if status_code == 401:
        return json_response(_DENIED, 401, {"WWW-Authenticate": "Bearer"})
    name = _STATUS_NAMES.get(status_code, str(status_code))
    return envelope_error(status_code, name, f"Emulated failure: HTTP {status_code} ({name})")


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def _authorised(state: EmulatorState, request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and state.cherwell.is_valid(token.strip(), state.clock())


def _credentials_ok(state: EmulatorState, form: dict[str, str]) -> bool:
    settings = state.settings
    client_id, username = form.get("client_id", ""), form.get("username", "")
    password = form.get("password", "")
    if not (client_id and username and password):
        return False
    if settings.cherwell_password is None:
        return True
    expected = settings.cherwell_password.get_secret_value()
    return (
        hmac.compare_digest(password.encode(), expected.encode())
        and settings.cherwell_client_id in (None, client_id)
        and settings.cherwell_username in (None, username)
    )


def _grant_error(error: str, description: str) -> Response:
    return json_response({"error": error, "error_description": description}, 400)


@router.post("/token", summary="OAuth2 token: password and refresh_token grants (form)")
async def token(request: Request) -> Response:
    state = get_state(request)

    async def handle(_: FaultDecision) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        grant = form.get("grant_type", "")
        settings = state.settings
        async with state.lock:
            now = state.clock()
            if grant == "password":
                if not _credentials_ok(state, form):
                    return _grant_error("invalid_grant", "The user name or password is incorrect.")
                client_id, username = form["client_id"], form["username"]
            elif grant == "refresh_token":
                old = state.cherwell.redeem_refresh(
                    form.get("refresh_token", ""), form.get("client_id", ""), now
                )
                if old is None:
                    return _grant_error("invalid_grant", "The refresh token is invalid or expired.")
                client_id, username = old.client_id, old.username
            else:
                return _grant_error("unsupported_grant_type", f"Unsupported grant_type {grant!r}")
            issued = state.cherwell.issue_token(
                client_id=client_id,
                username=username,
                now=now,
                ttl=settings.token_ttl_seconds,
                refresh_ttl=settings.refresh_token_ttl_seconds,
            )
        issued_at, expires_at = token_times(now, settings.token_ttl_seconds)
        return json_response(
            {
                "access_token": issued.access_token,
                "token_type": "bearer",
                "expires_in": settings.token_ttl_seconds,
                "refresh_token": issued.refresh_token,
                "as:client_id": client_id,
                "username": username,
                ".issued": issued_at,
                ".expires": expires_at,
            },
            headers={"Cache-Control": "no-cache", "Pragma": "no-cache"},
        )

    return await guarded(
        request,
        platform="cherwell",
        route=f"POST {PREFIX}/token",
        handler=handle,
        render_failure=render_failure,
        is_token=True,
    )


_Model = TypeVar("_Model", bound=BaseModel)


async def _parse_body(request: Request, model: type[_Model]) -> _Model | Response:
    """The body as `model` (JSON keys in any case, as the real server takes them), or the
    400 envelope Cherwell answers for a body it cannot read."""
    try:
        return model.model_validate(lower_keys(await read_json(request)))
    except BadJson as exc:
        return envelope_error(400, "BadRequest", f"Invalid JSON: {exc}")
    except ValidationError as exc:
        return envelope_error(400, "BadRequest", _validation_message(exc))


@router.post("/api/V1/savebusinessobjectbatch", summary="Create or update business objects")
async def save_batch(request: Request) -> Response:
    state = get_state(request)

    async def handle(decision: FaultDecision) -> Response:
        if not _authorised(state, request):
            return render_failure(401)
        batch = await _parse_body(request, BatchSaveRequest)
        if isinstance(batch, Response):
            return batch
        responses: list[dict[str, Any]] = []
        stopped = False
        now = datetime.now(UTC)
        async with state.lock:
            for raw in batch.save_requests:
                fail_item = (
                    decision.item_error_rate > 0 and state.rng.random() < decision.item_error_rate
                )
                try:
                    item = SaveRequest.model_validate(raw).to_item()
                except ValidationError as exc:
                    result = SaveResult(
                        error_code="BadRequest", error_message=_validation_message(exc)
                    )
                else:
                    result = state.cherwell.save(item, now=now, fail_item=fail_item)
                responses.append(result.render())
                if result.has_error and batch.stop_on_error:
                    # Items after the failing one are not processed (and not answered).
                    stopped = True
                    break
        return json_response(
            {
                "responses": responses,
                "errorCode": "StoppedOnError" if stopped else None,
                "errorMessage": "Batch stopped at the first failed item" if stopped else None,
                "hasError": stopped,
            }
        )

    return await guarded(
        request,
        platform="cherwell",
        route=f"POST {PREFIX}/api/V1/savebusinessobjectbatch",
        handler=handle,
        render_failure=render_failure,
    )


@router.post("/api/V1/getsearchresults", summary="Search business objects with filters")
async def search(request: Request) -> Response:
    state = get_state(request)

    async def handle(_: FaultDecision) -> Response:
        if not _authorised(state, request):
            return render_failure(401)
        query = await _parse_body(request, SearchResultsRequest)
        if isinstance(query, Response):
            return query
        bo = CATALOGUE.get(query.bus_ob_id.strip().lower())
        if bo is None:
            return envelope_error(
                400, "BusinessObjectNotFound", f"Business object {query.bus_ob_id!r} not found"
            )
        filters: list[Filter] = []
        for f in query.filters or []:
            fd = bo.resolve(f.field_id)
            operator = f.operator.strip().lower()
            if fd is None:
                return envelope_error(400, "FieldNotFound", f"Filter field {f.field_id!r} unknown")
            if operator not in OPERATORS:
                return envelope_error(
                    400, "InvalidOperator", f"Operator {f.operator!r} is not one of {OPERATORS}"
                )
            filters.append(Filter(fd, operator, f.value or ""))
        wanted: list[FieldDef] | None = None
        if query.fields and not query.include_all_fields:
            wanted = []
            for name in query.fields:
                fd = bo.resolve(name)
                if fd is None:
                    return envelope_error(400, "FieldNotFound", f"Field {name!r} unknown")
                wanted.append(fd)
        async with state.lock:
            found = state.cherwell.tables[bo.bus_ob_id].search(filters)
            total = len(found)
            # No pageSize means every row in one page; pages are numbered from 1.
            page = max(query.page_number or 1, 1)
            size = query.page_size if query.page_size and query.page_size > 0 else max(total, 1)
            rows = found[(page - 1) * size : page * size]
            objects = [state.cherwell.read_response(bo, r, wanted) for r in rows]
        return json_response(
            {
                "businessObjects": objects,
                "hasPrompts": False,
                "links": [],
                "prompts": [],
                "searchResultsFields": [],
                "simpleResults": None,
                "totalRows": total,
                "hasMoreRecords": page * size < total,
                "errorCode": None,
                "errorMessage": None,
                "hasError": False,
            }
        )

    return await guarded(
        request,
        platform="cherwell",
        route=f"POST {PREFIX}/api/V1/getsearchresults",
        handler=handle,
        render_failure=render_failure,
    )


async def _read_one(
    request: Request, route: str, busobid: str, *, rec_id: str | None, public_id: str | None
) -> Response:
    state = get_state(request)

    async def handle(_: FaultDecision) -> Response:
        if not _authorised(state, request):
            return render_failure(401)
        bo: BusObDef | None = CATALOGUE.get(busobid.strip().lower())
        if bo is None:
            return envelope_error(404, "BusinessObjectNotFound", f"Business object {busobid!r}")
        async with state.lock:
            record = state.cherwell.tables[bo.bus_ob_id].find(rec_id, public_id)
            if record is None:
                return envelope_error(404, "RecordNotFound", f"{bo.name} record not found")
            return json_response(state.cherwell.read_response(bo, record))

    return await guarded(
        request, platform="cherwell", route=route, handler=handle, render_failure=render_failure
    )


@router.get(
    "/api/V1/getbusinessobject/busobid/{busobid}/publicid/{publicid}",
    summary="Read one business object by its public id",
)
async def get_by_public_id(request: Request, busobid: str, publicid: str) -> Response:
    route = f"GET {PREFIX}/api/V1/getbusinessobject/busobid/{{busobid}}/publicid/{{publicid}}"
    return await _read_one(request, route, busobid, rec_id=None, public_id=publicid)


@router.get(
    "/api/V1/getbusinessobject/busobid/{busobid}/busobrecid/{busobrecid}",
    summary="Read one business object by its record id",
)
async def get_by_rec_id(request: Request, busobid: str, busobrecid: str) -> Response:
    route = f"GET {PREFIX}/api/V1/getbusinessobject/busobid/{{busobid}}/busobrecid/{{busobrecid}}"
    return await _read_one(request, route, busobid, rec_id=busobrecid, public_id=None)


@router.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
async def not_found(request: Request, path: str) -> Response:
    """Anything else under /CherwellAPI answers as ASP.NET Web API does."""
    message = f"No HTTP resource was found that matches the request URI '{request.url}'."
    return json_response({"Message": message}, 404)
