"""SFyC's data in memory (Salesforce-style WorkOrder): records, external-id index, sessions.

Pure logic without HTTP: `sfyc.py` parses the requests and renders what this returns.
Accepted fields follow docs/contracts.md §3; the SOQL subset is parsed by `parse_soql`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

WORK_ORDER = "WorkOrder"
KEY_PREFIX = "0WO"
ORG_ID = "00D5g000008XyZaEAK"
USER_ID = "0055g00000DmQ1rAAF"
STANDARD_FIELDS = ("Subject", "Description", "Priority", "Status", "Street", "City", "State")
SYSTEM_FIELDS = ("Id", "WorkOrderNumber", "CreatedDate", "LastModifiedDate")
PRIORITIES = ("Low", "Medium", "High", "Critical")
STATUSES = ("New", "In Progress", "On Hold", "Completed", "Closed", "Cannot Complete", "Canceled")
PICKLISTS = {"Priority": PRIORITIES, "Status": STATUSES}
MAX_LENGTH = {"Subject": 255, "Street": 255, "City": 40, "State": 80, "Description": 32_000}
_KNOWN_FIELDS = {name.casefold(): name for name in (*SYSTEM_FIELDS, *STANDARD_FIELDS)}
_CHECKSUM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def id18(id15: str) -> str:
    """Salesforce's case-safe 18-char id: three checksum chars encode the upper-case letters."""
    suffix = ""
    for chunk in range(0, 15, 5):
        bits = 0
        for i, ch in enumerate(id15[chunk : chunk + 5]):
            if ch.isupper():
                bits |= 1 << i
        suffix += _CHECKSUM_CHARS[bits]
    return id15 + suffix


def normalise_id(value: str) -> str | None:
    """An 18-char id from a 15- or 18-char one; None when it cannot be a record id."""
    value = value.strip()
    if len(value) == 15 and value.isalnum():
        return id18(value)
    if len(value) == 18 and value.isalnum():
        return id18(value[:15])
    return None


def sf_datetime(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


@dataclass(frozen=True)
class RecordError:
    status_code: str
    message: str
    fields: tuple[str, ...] = ()

    def render(self) -> dict[str, Any]:
        return {
            "statusCode": self.status_code,
            "message": self.message,
            "fields": list(self.fields),
        }


ROLLED_BACK = RecordError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
)


@dataclass
class SfycSession:
    access_token: str
    client_id: str
    expires_at: float


@dataclass
class _Planned:
    """One upsert record after validation: its external key and canonical field values."""

    key: str
    values: dict[str, Any]


class SfycStore:
    """Everything one SFyC emulator instance remembers."""

    def __init__(self, rng: random.Random, external_id_fields: Iterable[str]) -> None:
        self._rng = rng
        self.records: dict[str, dict[str, Any]] = {}
        self.external_fields = {f.casefold(): f for f in external_id_fields}
        self._by_external: dict[str, dict[str, str]] = {f: {} for f in self.external_fields}
        self._by_number: dict[str, str] = {}
        # Configured spellings win, so a record stores its external id under one name.
        self._custom_names: dict[str, str] = dict(self.external_fields)
        self._next_number = 1
        self._next_id = 1
        self._signing_key = secrets.token_bytes(32)
        self.sessions: dict[str, SfycSession] = {}
        self.api_usage = 0

    # Sessions ---------------------------------------------------------------------------

    def open_session(self, client_id: str, now: float, ttl: int) -> SfycSession:
        session = SfycSession(f"{ORG_ID[:15]}!{secrets.token_urlsafe(72)}", client_id, now + ttl)
        self.sessions[session.access_token] = session
        return session

    def touch(self, access_token: str, now: float, ttl: int) -> bool:
        """Whether the session is alive; a use extends it (Salesforce's inactivity timeout)."""
        session = self.sessions.get(access_token)
        if session is None or session.expires_at <= now:
            return False
        session.expires_at = now + ttl
        return True

    def expire_all(self, now: float) -> None:
        for session in self.sessions.values():
            session.expires_at = min(session.expires_at, now)

    def sign(self, identity: str, issued_at: str) -> str:
        digest = hmac.new(self._signing_key, (identity + issued_at).encode(), hashlib.sha256)
        return base64.b64encode(digest.digest()).decode()

    # Fields -----------------------------------------------------------------------------

    def canonical(self, name: str) -> str | None:
        """The API name of a WorkOrder field (names are case-insensitive); None if unknown."""
        folded = name.casefold()
        if known := _KNOWN_FIELDS.get(folded):
            return known
        if folded.endswith("__c") and len(folded) > 3:
            return self._custom_names.setdefault(folded, name)
        return None

    def external_field(self, name: str) -> str | None:
        return self.external_fields.get(name.casefold())

    # Upsert -----------------------------------------------------------------------------

    def upsert(
        self,
        external_field: str,
        records: list[Any],
        *,
        all_or_none: bool,
        fail_item: Callable[[], bool],
        now: datetime,
    ) -> list[dict[str, Any]]:
        """Upsert WorkOrders by `external_field`; one UpsertResult per record, in order."""
        keys = [self._external_value(r, external_field) for r in records]
        seen: dict[str, int] = {}
        for key in keys:
            if key:
                seen[key] = seen.get(key, 0) + 1
        plans: list[_Planned | RecordError] = []
        for record, key in zip(records, keys, strict=True):
            if key and seen[key] > 1:
                plans.append(
                    RecordError(
                        "DUPLICATE_EXTERNAL_ID",
                        f"Duplicate external id specified: {key}",
                        (external_field,),
                    )
                )
                continue
            planned = self._plan(record, key, external_field)
            if isinstance(planned, _Planned) and fail_item():
                planned = RecordError(
                    "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                    "Emulated validation failure (item_error_rate)",
                )
            plans.append(planned)
        any_failed = any(isinstance(p, RecordError) for p in plans)
        stamp = sf_datetime(now)  # one request, one moment: formatted once
        results: list[dict[str, Any]] = []
        for plan in plans:
            if isinstance(plan, RecordError):
                results.append(_failure(plan))
            elif all_or_none and any_failed:
                results.append(_failure(ROLLED_BACK))
            else:
                record_id, created = self._apply(external_field, plan, stamp)
                results.append({"id": record_id, "success": True, "errors": [], "created": created})
        return results

    @staticmethod
    def _external_value(record: Any, external_field: str) -> str | None:
        if not isinstance(record, dict):
            return None
        folded = external_field.casefold()
        for name, value in record.items():
            if name.casefold() == folded and isinstance(value, str) and value.strip():
                return value
        return None

    def _plan(self, record: Any, key: str | None, external_field: str) -> _Planned | RecordError:
        if not isinstance(record, dict):
            return RecordError("JSON_PARSER_ERROR", "Each record must be a JSON object")
        attributes = record.get("attributes")
        kind = attributes.get("type") if isinstance(attributes, dict) else None
        if not isinstance(kind, str):
            return RecordError("INVALID_TYPE", "Must send a concrete entity type.")
        if kind.casefold() != WORK_ORDER.casefold():
            return RecordError(
                "INVALID_TYPE", f"Record type {kind} does not match the URI's sobject {WORK_ORDER}"
            )
        if key is None:
            return RecordError(
                "MISSING_ARGUMENT", f"{external_field} not specified", (external_field,)
            )
        values: dict[str, Any] = {}
        for name, value in record.items():
            if name == "attributes":
                continue
            api_name = self.canonical(name)
            if api_name is None or api_name in SYSTEM_FIELDS:
                return RecordError(
                    "INVALID_FIELD",
                    f"No such column '{name}' on sobject of type {WORK_ORDER}",
                    (name,),
                )
            problem = _check_value(api_name, value)
            if problem is not None:
                return problem
            values[api_name] = value
        return _Planned(key, values)

    def _apply(self, external_field: str, plan: _Planned, stamp: str) -> tuple[str, bool]:
        index = self._by_external[external_field.casefold()]
        record_id = index.get(plan.key)
        if record_id is not None:
            record = self.records[record_id]
            record.update(plan.values)
            record["LastModifiedDate"] = stamp
            return record_id, False
        record_id = self._new_id()
        number = f"{self._next_number:08d}"
        self._next_number += 1
        record = {
            "Id": record_id,
            "WorkOrderNumber": number,
            "Status": "New",
            "Priority": "Low",
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
            **plan.values,
        }
        self.records[record_id] = record
        self._by_number[number] = record_id
        for folded, name in self.external_fields.items():
            value = record.get(name)
            if isinstance(value, str):
                self._by_external[folded][value] = record_id
        return record_id, True

    def _new_id(self) -> str:
        # Key prefix, pod and a base-62 serial: 15 case-sensitive chars, then the checksum.
        serial, digits = self._next_id, ""
        self._next_id += 1
        for _ in range(7):
            serial, rest = divmod(serial, 62)
            digits = _BASE62[rest] + digits
        return id18(f"{KEY_PREFIX}5g000{digits}")

    # Reads ------------------------------------------------------------------------------

    def get(self, record_id: str) -> dict[str, Any] | None:
        full = normalise_id(record_id)
        return self.records.get(full) if full else None

    def select(self, field: str | None, values: list[str] | None) -> list[dict[str, Any]]:
        """Records whose `field` equals one of `values` (all records when no WHERE)."""
        if field is None or values is None:
            return list(self.records.values())
        if field == "Id":
            found = (self.get(v) for v in values)
            return [r for r in found if r is not None]
        lookup = (
            self._by_number
            if field == "WorkOrderNumber"
            else self._by_external.get(field.casefold())
        )
        if lookup is not None:
            ids = dict.fromkeys(i for v in values if (i := lookup.get(v)) is not None)
            return [self.records[i] for i in ids]
        # SOQL compares text case-insensitively (external ids above are case-sensitive).
        wanted = {v.casefold() for v in values}
        return [
            r
            for r in self.records.values()
            if isinstance(r.get(field), str) and r[field].casefold() in wanted
        ]


def _failure(error: RecordError) -> dict[str, Any]:
    return {"id": None, "success": False, "errors": [error.render()], "created": False}


def _check_value(api_name: str, value: Any) -> RecordError | None:
    if value is not None and not isinstance(value, str | int | float | bool):
        return RecordError(
            "INVALID_FIELD", f"Cannot deserialize a JSON object into field {api_name}", (api_name,)
        )
    allowed = PICKLISTS.get(api_name)
    if allowed is not None and value not in allowed:
        return RecordError(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{api_name}: bad value for restricted picklist field: {value}",
            (api_name,),
        )
    limit = MAX_LENGTH.get(api_name)
    if limit is not None and isinstance(value, str) and len(value) > limit:
        return RecordError(
            "STRING_TOO_LONG",
            f"{api_name}: data value too large (max length={limit})",
            (api_name,),
        )
    return None


@dataclass(frozen=True)
class SoqlQuery:
    """`SELECT <fields> FROM <object> [WHERE <field> = '…' | <field> IN ('…', …)] [LIMIT n]`."""

    fields: tuple[str, ...]
    sobject: str
    where_field: str | None = None
    where_values: tuple[str, ...] | None = None
    limit: int | None = None


class SoqlError(ValueError):
    """The query is outside the supported subset (Salesforce's MALFORMED_QUERY)."""


_SELECT = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<sobject>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_NAME = re.compile(r"^[A-Za-z]\w*$")
_EQ = re.compile(r"^(?P<field>\w+)\s*=\s*(?P<rest>'.*)$", re.DOTALL)
_IN = re.compile(r"^(?P<field>\w+)\s+IN\s*\((?P<rest>.*)\)$", re.IGNORECASE | re.DOTALL)
_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


def _literals(text: str) -> tuple[list[str], str]:
    """Parse comma-separated quoted literals; returns them and the unparsed remainder."""
    values: list[str] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text) or text[pos] != "'":
            raise SoqlError(f"expected a quoted string at position {pos} of {text!r}")
        pos += 1
        chars: list[str] = []
        while pos < len(text) and text[pos] != "'":
            if text[pos] == "\\":
                if pos + 1 >= len(text) or text[pos + 1] not in _ESCAPES:
                    raise SoqlError("invalid escape sequence in a string literal")
                chars.append(_ESCAPES[text[pos + 1]])
                pos += 2
            else:
                chars.append(text[pos])
                pos += 1
        if pos >= len(text):
            raise SoqlError("unterminated string literal")
        values.append("".join(chars))
        pos += 1
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        return values, text[pos:]


def parse_soql(query: str) -> SoqlQuery:
    match = _SELECT.match(query)
    if match is None:
        raise SoqlError("expected SELECT <fields> FROM <object> [WHERE …] [LIMIT n]")
    fields = tuple(f.strip() for f in match["fields"].split(","))
    bad = [f for f in fields if not _NAME.match(f)]
    if bad:
        raise SoqlError(f"unexpected token in the field list: {bad[0]!r}")
    limit = int(match["limit"]) if match["limit"] else None
    where = match["where"]
    if where is None:
        return SoqlQuery(fields, match["sobject"], limit=limit)
    where = where.strip()
    if eq := _EQ.match(where):
        values, rest = _literals(eq["rest"])
        if len(values) != 1 or rest.strip():
            raise SoqlError(f"unexpected text after the value: {rest.strip()!r}")
        return SoqlQuery(fields, match["sobject"], eq["field"], tuple(values), limit)
    if in_ := _IN.match(where):
        values, rest = _literals(in_["rest"])
        if rest.strip():
            raise SoqlError(f"unexpected text in the IN list: {rest.strip()!r}")
        return SoqlQuery(fields, match["sobject"], in_["field"], tuple(values), limit)
    raise SoqlError("only WHERE <field> = '…' or WHERE <field> IN ('…', …) is supported")
