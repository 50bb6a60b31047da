"""Cherwell: the adapter (token, open-incident search, batched saves) and its four steps.

Speaks the public CherwellAPI (CONTEXT.md §4, docs/contracts.md §2); one HTTP call per
batch, one re-login on 401, per-item results because batch items never roll back. Its steps
are check, note, create and link; the incident's ids are kept under platform_ids["cherwell"].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from be_service.config import CherwellFields
from be_service.pipeline.steps import (
    CallFailure,
    Item,
    Outcome,
    PlatformError,
    PlatformIds,
    Step,
    rejected,
    succeeded,
    truncate,
)
from be_service.platforms.http import BearerSession, CallObserver, encode_json


@dataclass(frozen=True)
class CherwellCredentials:
    base_url: str
    client_id: str
    username: str
    password: str = field(repr=False)


class NewIncident(msgspec.Struct, frozen=True):
    correlation_key: str
    title: str
    description: str
    priority: str  # "1".."4"
    category: str
    subcategory: str


class FoundIncident(msgspec.Struct, frozen=True):
    rec_id: str
    public_id: str


class SaveResult(msgspec.Struct, frozen=True):
    """One SaveResponse of a batch, in request order."""

    ok: bool
    rec_id: str | None
    public_id: str | None
    message: str | None
    response: str | None


class CherwellClient:
    """One per BE process; safe to share between the workers (the token is shared too)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: CherwellCredentials,
        fields: CherwellFields,
        observer: CallObserver | None = None,
    ) -> None:
        self._fields = fields
        self._base = credentials.base_url.rstrip("/")
        self._session = BearerSession(
            http,
            platform="Cherwell",
            token_url=self._base + "/token",
            form={
                "grant_type": "password",
                "client_id": credentials.client_id,
                "username": credentials.username,
                "password": credentials.password,
            },
            observer=observer,
        )

    async def search_open(self, keys: Sequence[str], *, page_size: int) -> dict[str, FoundIncident]:
        """Open incidents of the configured categories whose correlation key is one of `keys`."""
        f = self._fields
        filters = (
            [{"fieldId": f.field_correlation_key, "operator": "eq", "value": k} for k in keys]
            + [{"fieldId": f.field_category, "operator": "eq", "value": c} for c in f.categories]
            + [{"fieldId": f.field_status, "operator": "eq", "value": s} for s in f.open_statuses]
        )
        found: dict[str, FoundIncident] = {}
        page = 1
        while True:
            body = {
                "busObId": f.incident_busobid,
                "filters": filters,
                "fields": [f.field_correlation_key, f.field_incident_id],
                "pageNumber": page,
                "pageSize": page_size,
            }
            data = await self._post_json("/api/V1/getsearchresults", body)
            objects = (data.get("businessObjects") or []) if isinstance(data, dict) else None
            if objects is None:
                raise _bad_body("getsearchresults answered without businessObjects", data)
            for obj in objects:
                key = self._field_value(obj.get("fields") or [], f.field_correlation_key)
                rec_id, public_id = obj.get("busObRecId"), obj.get("busObPublicId")
                # The oldest match wins should the platform ever hold two.
                if key and rec_id and key not in found:
                    found[key] = FoundIncident(str(rec_id), str(public_id or ""))
            if not objects or not data.get("hasMoreRecords"):
                return found
            page += 1

    async def create_incidents(self, incidents: Sequence[NewIncident]) -> list[SaveResult]:
        f = self._fields
        requests = [
            {
                "busObId": f.incident_busobid,
                "persist": True,
                "fields": [
                    _field(f.field_status, "Status", f.new_status),
                    _field(f.field_short_description, "ShortDescription", i.title),
                    _field(f.field_description, "Description", i.description),
                    _field(f.field_priority, "Priority", i.priority),
                    _field(f.field_category, "Category", i.category),
                    _field(f.field_subcategory, "Subcategory", i.subcategory),
                    _field(f.field_correlation_key, "TpcCorrelationKey", i.correlation_key),
                ],
            }
            for i in incidents
        ]
        return await self._save_batch(requests)

    async def add_notes(self, notes: Sequence[tuple[str, str]]) -> list[SaveResult]:
        """Journal notes, given as (incident busObRecId, text)."""
        f = self._fields
        requests = [
            {
                "busObId": f.journal_busobid,
                "persist": True,
                "fields": [
                    _field(f.field_journal_parent_rec_id, "ParentRecID", rec_id),
                    _field(f.field_journal_parent_type_id, "ParentTypeID", f.incident_busobid),
                    _field(f.field_journal_details, "Details", text),
                ],
            }
            for rec_id, text in notes
        ]
        return await self._save_batch(requests)

    async def set_work_order_numbers(self, items: Sequence[tuple[str, str]]) -> list[SaveResult]:
        """Write the OT number on incidents, given as (busObRecId, work-order number)."""
        f = self._fields
        requests = [
            {
                "busObId": f.incident_busobid,
                "busObRecId": rec_id,
                "persist": True,
                "fields": [_field(f.field_work_order_number, "TpcWorkOrderNumber", number)],
            }
            for rec_id, number in items
        ]
        return await self._save_batch(requests)

    async def _save_batch(self, requests: list[dict[str, Any]]) -> list[SaveResult]:
        data = await self._post_json(
            "/api/V1/savebusinessobjectbatch", {"saveRequests": requests, "stopOnError": False}
        )
        responses = data.get("responses") if isinstance(data, dict) else None
        if not isinstance(responses, list) or len(responses) != len(requests):
            # Without one answer per item nothing can be attributed; the items may exist.
            raise _bad_body("savebusinessobjectbatch answered without one response per item", data)
        return [_save_result(item) for item in responses]

    async def _post_json(self, path: str, body: dict[str, Any]) -> Any:
        return await self._session.request("POST", self._base + path, content=encode_json(body))

    @staticmethod
    def _field_value(fields: list[dict[str, Any]], field_id: str) -> str | None:
        for item in fields:
            # Cherwell may answer with the short id or the full "BO:…,FI:<id>" form.
            if str(item.get("fieldId") or "").endswith(field_id):
                value = item.get("value")
                return str(value) if value is not None else None
        return None


def _field(field_id: str, name: str, value: str) -> dict[str, Any]:
    return {"dirty": True, "fieldId": field_id, "name": name, "value": value}


def _save_result(item: Any) -> SaveResult:
    if not isinstance(item, dict):
        return SaveResult(False, None, None, "malformed SaveResponse", truncate(str(item)))
    raw = truncate(encode_json(item).decode())
    if item.get("hasError") in (True, "true", "True"):
        problems = [
            str(e.get("error") or e.get("errorCode"))
            for e in item.get("fieldValidationErrors") or []
            if isinstance(e, dict)
        ]
        message = "; ".join(
            p for p in [item.get("errorCode"), item.get("errorMessage"), *problems] if p
        )
        return SaveResult(False, None, None, message or "save failed", raw)
    rec_id, public_id = item.get("busObRecId"), item.get("busObPublicId")
    if not rec_id:
        return SaveResult(False, None, None, "SaveResponse without busObRecId", raw)
    return SaveResult(True, str(rec_id), str(public_id) if public_id else None, None, raw)


def _bad_body(message: str, data: Any) -> PlatformError:
    """A 2xx answer without the expected shape: retryable, like any transient fault."""
    return PlatformError(
        CallFailure(
            message=message,
            retryable=True,
            http_status=200,
            response=truncate(encode_json(data).decode()) if data is not None else None,
        )
    )


# The steps Cherwell owns in the step list (platforms/registry.py).

PLATFORM = "cherwell"
INCIDENT = (PLATFORM, "rec_id")


def _existing(item: Item) -> bool:
    """The revision found its incident open (it notes it) rather than opening it."""
    return bool(item.platform_id(PLATFORM, "existing"))


def _save_outcomes(
    step: Step,
    items: Sequence[Item],
    results: list[SaveResult],
    ids: Callable[[SaveResult], PlatformIds] = lambda _: {},
) -> list[Outcome]:
    return [
        succeeded(step, item, response=result.response, ids=ids(result))
        if result.ok
        else rejected(step, item, response=result.response, error=result.message)
        for item, result in zip(items, results, strict=True)
    ]


class Check(Step):
    """Search the open incidents by correlation key: one search per request.

    Also takes the revisions waiting to be created: a create whose answer was lost may have
    landed, and an incident found for them is that create's result (never sent twice).
    """

    name = "check"
    platform = PLATFORM
    provides = ("rec_id", "public_id", "existing")
    also_takes_from = ("create",)
    record_at_once = True

    def __init__(self, client: CherwellClient) -> None:
        self.client = client

    def wants(self, item: Item) -> bool:
        return not item.platform_id(*INCIDENT)

    async def send(self, items: Sequence[Item], *, request_size: int) -> list[Outcome]:
        found = await self.client.search_open([i.dedup_key for i in items], page_size=request_size)
        outcomes = []
        for item in items:
            incident = found.get(item.dedup_key)
            if incident is None:
                clear = item.action == "clear"
                response = "no open incident" + (": nothing to clear" if clear else "")
                outcomes.append(succeeded(self, item, response=response))
                continue
            ids: dict[str, Any] = {"rec_id": incident.rec_id, "public_id": incident.public_id}
            if item.step != Create.name:
                ids["existing"] = True
            response = f"open incident {incident.public_id} found"
            outcomes.append(succeeded(self, item, response=response, ids={PLATFORM: ids}))
        return outcomes


class Note(Step):
    """Add a Journal note to the incident the revision found open (not idempotent)."""

    name = "note"
    platform = PLATFORM
    needs = (INCIDENT,)
    repeatable = False

    def __init__(self, client: CherwellClient) -> None:
        self.client = client

    def wants(self, item: Item) -> bool:
        return super().wants(item) and _existing(item)

    async def send(self, items: Sequence[Item], *, request_size: int) -> list[Outcome]:
        notes = [(i.platform_id(*INCIDENT), note_text(i)) for i in items]
        return _save_outcomes(self, items, await self.client.add_notes(notes))


def note_text(item: Item) -> str:
    return f"[{item.action} r{item.revision}] {item.title}\n{item.description}".strip()


def _priority_digit(priority: str) -> str:
    return priority[1:] if priority[:1] == "P" and priority[1:].isdigit() else "4"


class Create(Step):
    """Create the incidents of revisions the check found none for (a clear needs none)."""

    name = "create"
    platform = PLATFORM
    provides = ("rec_id", "public_id")
    may_write_unanswered = True

    def __init__(self, client: CherwellClient) -> None:
        self.client = client

    def wants(self, item: Item) -> bool:
        return item.action != "clear" and not item.platform_id(*INCIDENT)

    async def send(self, items: Sequence[Item], *, request_size: int) -> list[Outcome]:
        incidents = [
            NewIncident(
                correlation_key=i.dedup_key,
                title=i.title,
                description=i.description,
                priority=_priority_digit(i.priority),
                category=i.category,
                subcategory=i.kind,
            )
            for i in items
        ]
        results = await self.client.create_incidents(incidents)
        return _save_outcomes(
            self,
            items,
            results,
            lambda r: {PLATFORM: {"rec_id": r.rec_id, "public_id": r.public_id}},
        )


class Link(Step):
    """Write the SFyC work-order number on the incident this revision opened."""

    name = "link"
    platform = PLATFORM
    needs = (INCIDENT, ("sfyc", "number"))

    def __init__(self, client: CherwellClient) -> None:
        self.client = client

    def wants(self, item: Item) -> bool:
        # Like the work order: an `open` that found its incident open writes the number
        # again (the same one: idempotent), in case the first try never got that far.
        return super().wants(item) and (not _existing(item) or item.action == "open")

    async def send(self, items: Sequence[Item], *, request_size: int) -> list[Outcome]:
        numbers = [(i.platform_id(*INCIDENT), i.platform_id("sfyc", "number")) for i in items]
        return _save_outcomes(self, items, await self.client.set_work_order_numbers(numbers))
