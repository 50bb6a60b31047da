"""SFyC adapter (Salesforce-style REST): token, WorkOrder upsert by external id, number query.

The upsert is idempotent by the external id, so a retried batch never duplicates an OT;
the WorkOrderNumber is read back with one SOQL query per batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from be_service.platforms.http import (
    CallFailure,
    PlatformError,
    decode_json,
    encode_json,
    failure_from_exception,
    failure_from_response,
    truncate,
)

_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
# The number query is a GET whose IN list grows with the keys; Salesforce refuses long URIs
# (about 16 000 characters), and 50 keys of up to ~300 characters stay below that.
QUERY_KEYS_PER_REQUEST = 50
PRIORITIES = {"P1": "High", "P2": "High", "P3": "Medium", "P4": "Low"}


@dataclass(frozen=True)
class SfycCredentials:
    base_url: str  # up to and including /services
    client_id: str
    client_secret: str
    api_version: str
    external_id_field: str


@dataclass(frozen=True)
class NewWorkOrder:
    external_key: str
    subject: str
    description: str
    priority: str  # P1..P4
    cherwell_incident: str


@dataclass(frozen=True)
class UpsertResult:
    """One record's result of a collection upsert, in request order."""

    ok: bool
    record_id: str | None
    message: str | None
    response: str | None


class SfycClient:
    """One per BE process; safe to share between the workers."""

    def __init__(self, http: httpx.AsyncClient, credentials: SfycCredentials) -> None:
        self._http = http
        self._credentials = credentials
        self._base = credentials.base_url.rstrip("/")
        parts = urlsplit(self._base)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._data = f"{self._base}/data/{credentials.api_version}"
        self._token: str | None = None
        self._login_lock = asyncio.Lock()

    async def upsert_work_orders(self, orders: Sequence[NewWorkOrder]) -> list[UpsertResult]:
        field = self._credentials.external_id_field
        body = {
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": "WorkOrder"},
                    field: o.external_key,
                    "Subject": o.subject,
                    "Description": o.description,
                    "Priority": PRIORITIES.get(o.priority, "Low"),
                    "Status": "New",
                    "Cherwell_Incident__c": o.cherwell_incident,
                }
                for o in orders
            ],
        }
        url = f"{self._data}/composite/sobjects/WorkOrder/{field}"
        data = await self._call("PATCH", url, content=encode_json(body))
        if not isinstance(data, list) or len(data) != len(orders):
            raise PlatformError(
                CallFailure(
                    message="upsert answered without one result per record",
                    retryable=True,
                    http_status=200,
                    response=truncate(encode_json(data).decode()),
                )
            )
        return [_upsert_result(item) for item in data]

    async def work_order_numbers(self, external_keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        """(Id, WorkOrderNumber) of the work orders with these external keys."""
        numbers: dict[str, tuple[str, str]] = {}
        for start in range(0, len(external_keys), QUERY_KEYS_PER_REQUEST):
            chunk = external_keys[start : start + QUERY_KEYS_PER_REQUEST]
            numbers.update(await self._query_numbers(chunk))
        return numbers

    async def _query_numbers(self, external_keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        field = self._credentials.external_id_field
        quoted = ", ".join(_soql_literal(k) for k in external_keys)
        # SOQL, not SQL: the field name is configuration and every value is quoted/escaped.
        soql = f"SELECT Id, WorkOrderNumber, {field} FROM WorkOrder WHERE {field} IN ({quoted})"  # noqa: S608
        numbers: dict[str, tuple[str, str]] = {}
        data = await self._call("GET", f"{self._data}/query", params={"q": soql})
        while True:
            if not isinstance(data, dict) or not isinstance(data.get("records"), list):
                raise PlatformError(
                    CallFailure(
                        message="query answered without records",
                        retryable=True,
                        http_status=200,
                        response=truncate(encode_json(data).decode()),
                    )
                )
            for record in data["records"]:
                key = record.get(field)
                if key and record.get("Id"):
                    numbers[str(key)] = (
                        str(record["Id"]),
                        str(record.get("WorkOrderNumber") or ""),
                    )
            next_url = data.get("nextRecordsUrl")
            if data.get("done", True) or not next_url:
                return numbers
            data = await self._call("GET", self._origin + str(next_url))

    async def _call(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        token = self._token or await self._login(stale=None)
        response = await self._send(method, url, token, content=content, params=params)
        if response.status_code == 401:
            token = await self._login(stale=token)
            response = await self._send(method, url, token, content=content, params=params)
        if response.status_code != 200:
            raise PlatformError(failure_from_response(response))
        return decode_json(response)

    async def _send(
        self,
        method: str,
        url: str,
        token: str,
        *,
        content: bytes | None,
        params: dict[str, str] | None,
    ) -> httpx.Response:
        try:
            return await self._http.request(
                method,
                url,
                content=content,
                params=params,
                headers={**_JSON_HEADERS, "Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            raise PlatformError(failure_from_exception(exc)) from exc

    async def _login(self, *, stale: str | None) -> str:
        async with self._login_lock:
            if self._token is not None and self._token != stale:
                return self._token
            c = self._credentials
            form = {
                "grant_type": "client_credentials",
                "client_id": c.client_id,
                "client_secret": c.client_secret,
            }
            try:
                response = await self._http.post(self._base + "/oauth2/token", data=form)
            except httpx.HTTPError as exc:
                raise PlatformError(failure_from_exception(exc)) from exc
            if response.status_code != 200:
                raise PlatformError(
                    failure_from_response(
                        response, message=f"SFyC login failed with HTTP {response.status_code}"
                    )
                )
            data = decode_json(response)
            token = data.get("access_token") if isinstance(data, dict) else None
            if not token:
                raise PlatformError(
                    CallFailure(message="SFyC login answered without access_token", retryable=True)
                )
            self._token = str(token)
            return self._token


def _soql_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _upsert_result(item: Any) -> UpsertResult:
    if not isinstance(item, dict):
        return UpsertResult(False, None, "malformed upsert result", truncate(str(item)))
    raw = truncate(encode_json(item).decode())
    if item.get("success") is True and item.get("id"):
        return UpsertResult(True, str(item["id"]), None, raw)
    errors = [
        f"{e.get('statusCode')}: {e.get('message')}"
        for e in item.get("errors") or []
        if isinstance(e, dict)
    ]
    return UpsertResult(False, None, "; ".join(errors) or "upsert failed", raw)
