"""Cherwell's data in memory: business-object catalogue, records, indexes, tokens, save/search.

Pure logic without HTTP: `cherwell.py` parses the requests and renders what this returns.
Field ids and names follow docs/contracts.md §2; search semantics follow CONTEXT.md §4.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal

import msgspec

INCIDENT_BUS_OB_ID = "6dd53665c0c24cab86870a21cf6434ae"
JOURNAL_BUS_OB_ID = "3312d0cebbbe3502f2df0fcf8f0006c7"
FIRST_PUBLIC_ID = 100_001

# Cherwell's OOTB incident statuses and priorities; other values are rejected per item.
INCIDENT_STATUSES = ("New", "Assigned", "In Progress", "Pending", "Resolved", "Closed", "Reopened")
INCIDENT_PRIORITIES = ("1", "2", "3", "4", "5")

Operator = Literal["eq", "gt", "lt", "contains", "startswith"]
OPERATORS: tuple[Operator, ...] = ("eq", "gt", "lt", "contains", "startswith")


@dataclass(frozen=True)
class FieldDef:
    """One field of a business object. `indexed` fields get an eq-lookup dict."""

    name: str
    field_id: str
    indexed: bool = False
    read_only: bool = False
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class BusObDef:
    """A business object's schema, with its fields addressable by id, full id or name."""

    name: str
    bus_ob_id: str
    fields: tuple[FieldDef, ...]
    by_id: dict[str, FieldDef] = field(init=False, repr=False, compare=False)
    by_name: dict[str, FieldDef] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {f.field_id: f for f in self.fields})
        object.__setattr__(self, "by_name", {f.name.casefold(): f for f in self.fields})

    def full_id(self, fd: FieldDef) -> str:
        return f"BO:{self.bus_ob_id},FI:{fd.field_id}"

    def resolve(self, field_id: str | None, name: str | None = None) -> FieldDef | None:
        """The field a client means: short id, `BO:…,FI:…` full id, else (no id) its name."""
        if field_id:
            parts = dict(part.strip().split(":", 1) for part in field_id.split(",") if ":" in part)
            if parts:
                parts = {k.upper(): v.strip().lower() for k, v in parts.items()}
                if parts.get("BO", self.bus_ob_id) != self.bus_ob_id:
                    return None
                return self.by_id.get(parts.get("FI", ""))
            return self.by_id.get(field_id.strip().lower())
        if name:
            return self.by_name.get(name.strip().casefold())
        return None


INCIDENT = BusObDef(
    "Incident",
    INCIDENT_BUS_OB_ID,
    (
        FieldDef("IncidentID", "6ae282c55e8e4266ae66ffc070c17fa3", indexed=True, read_only=True),
        FieldDef(
            "Status", "5eb3234ae1344c64a19819eda437f18d", indexed=True, allowed=INCIDENT_STATUSES
        ),
        FieldDef("Description", "252b836fc72c4149915053ca1131d138"),
        FieldDef("ShortDescription", "93e8ea93ff67fd95118255419690a50ef2d56f910c"),
        FieldDef(
            "Priority",
            "83c36313e97b4e6b9028aff3b401b71c",
            indexed=True,
            allowed=INCIDENT_PRIORITIES,
        ),
        FieldDef("Category", "9e0b434034e94781ab29598150f388aa", indexed=True),
        FieldDef("Subcategory", "1163fda7e6a44f40bb94d2b47cc58f46", indexed=True),
        FieldDef("TpcCorrelationKey", "94e3e947b25d42a9f75569bf4c2632538508f43c9c", indexed=True),
        FieldDef("TpcWorkOrderNumber", "9408bdf5e9b99ad9a6f6945e4571f7118b9d92bb7a", indexed=True),
        FieldDef("CreatedDateTime", "c1e86f31eb2c4c5f8e8615a5189e9b19", read_only=True),
    ),
)
JOURNAL = BusObDef(
    "JournalNote",
    JOURNAL_BUS_OB_ID,
    (
        FieldDef("ParentRecID", "9c2a9bd78a74741d50decf4c0f21a956", indexed=True),
        FieldDef("ParentTypeID", "0189a835421c76e78c8784af8d94e4c0"),
        FieldDef("Details", "3ec365dd533ddb7ef3d1c111186ce872"),
    ),
)
CATALOGUE = {bo.bus_ob_id: bo for bo in (INCIDENT, JOURNAL)}

_STATUS = INCIDENT.by_name["status"]
_PUBLIC_ID = INCIDENT.by_name["incidentid"]
_CREATED = INCIDENT.by_name["createddatetime"]
_PARENT = JOURNAL.by_name["parentrecid"]
_PARENT_TYPE = JOURNAL.by_name["parenttypeid"]


def cherwell_datetime(moment: datetime) -> str:
    """Cherwell's culture-formatted (en-US) date-time string, e.g. `1/8/2020 10:56:30 AM`."""
    hour = moment.hour % 12 or 12
    suffix = "AM" if moment.hour < 12 else "PM"
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment:%M:%S} {suffix}"


def _parse_datetime(text: str) -> datetime | None:
    for fmt in ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y"):
        try:
            return datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=None)


def _compare(left: str, right: str) -> int:
    """Order two stored strings the way SQL would for their type: number, date, then text."""
    try:
        a, b = float(left), float(right)
        return (a > b) - (a < b)
    except ValueError:
        pass
    da, db = _parse_datetime(left), _parse_datetime(right)
    if da is not None and db is not None:
        return (da > db) - (da < db)
    # SQL Server's default collation compares text case-insensitively.
    ca, cb = left.casefold(), right.casefold()
    return (ca > cb) - (ca < cb)


def matches(stored: str, operator: Operator, wanted: str) -> bool:
    if operator == "eq":
        return stored.casefold() == wanted.casefold()
    if operator == "contains":
        return wanted.casefold() in stored.casefold()
    if operator == "startswith":
        return stored.casefold().startswith(wanted.casefold())
    if not stored:
        return False
    order = _compare(stored, wanted)
    return order > 0 if operator == "gt" else order < 0


@dataclass
class Record:
    """A stored business object: its ids and its field values keyed by field id."""

    rec_id: str
    public_id: str
    seq: int
    values: dict[str, str]


class FieldWrite(msgspec.Struct, frozen=True):
    """One dirty field of a SaveRequest, as the client addressed it. (A Struct: ~40 per
    saved incident, and a frozen dataclass costs ten times as much to build.)"""

    field_id: str | None
    name: str | None
    value: str


@dataclass(frozen=True)
class SaveItem:
    bus_ob_id: str
    rec_id: str | None
    public_id: str | None
    fields: tuple[FieldWrite, ...]
    persist: bool


@dataclass
class SaveResult:
    """A SaveResponse; `validation` holds (fieldId, errorCode, message) triples."""

    public_id: str | None = None
    rec_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    validation: list[tuple[str, str, str]] = field(default_factory=list)
    cache_key: str | None = None

    @property
    def has_error(self) -> bool:
        return self.error_code is not None

    def render(self) -> dict[str, Any]:
        return {
            "busObPublicId": self.public_id,
            "busObRecId": self.rec_id,
            "cacheKey": self.cache_key,
            "fieldValidationErrors": [
                {"error": msg, "errorCode": code, "fieldId": fid}
                for fid, code, msg in self.validation
            ],
            "notificationTriggers": [],
            "errorCode": self.error_code,
            "errorMessage": self.error_message,
            "hasError": self.has_error,
        }


@dataclass(frozen=True)
class Filter:
    field: FieldDef
    operator: Operator
    value: str


class Table:
    """The records of one business object with an eq index per indexed field."""

    def __init__(self, definition: BusObDef) -> None:
        self.definition = definition
        self.records: dict[str, Record] = {}
        self.by_public_id: dict[str, str] = {}
        self._index: dict[str, dict[str, set[str]]] = {
            f.field_id: {} for f in definition.fields if f.indexed
        }
        self._seq = 0
        # Bumped by every write; a paged search reuses its result while nothing changed,
        # so reading N rows in pages of P costs O(N), not O(N²/P).
        self._version = 0
        self._last_search: tuple[tuple[Filter, ...], int, list[Record]] | None = None

    def insert(self, rec_id: str, public_id: str, values: dict[str, str]) -> Record:
        self._seq += 1
        record = Record(rec_id, public_id, self._seq, {})
        self.records[rec_id] = record
        self.by_public_id[public_id] = rec_id
        self.write(record, values)
        return record

    def write(self, record: Record, values: dict[str, str]) -> None:
        self._version += 1
        for field_id, value in values.items():
            slot = self._index.get(field_id)
            if slot is not None:
                old = record.values.get(field_id)
                if old is not None:
                    slot.get(old.casefold(), set()).discard(record.rec_id)
                slot.setdefault(value.casefold(), set()).add(record.rec_id)
            record.values[field_id] = value

    def find(self, rec_id: str | None, public_id: str | None) -> Record | None:
        if rec_id:
            return self.records.get(rec_id.strip().lower())
        if public_id:
            found = self.by_public_id.get(public_id.strip())
            return self.records.get(found) if found else None
        return None

    def search(self, filters: Iterable[Filter]) -> list[Record]:
        """Filters on one field are OR-ed, filters on different fields AND-ed; oldest first."""
        key = tuple(filters)
        cached = self._last_search
        if cached is not None and cached[0] == key and cached[1] == self._version:
            return cached[2]
        found = self._search(key)
        self._last_search = (key, self._version, found)
        return found

    def _search(self, filters: tuple[Filter, ...]) -> list[Record]:
        groups: dict[str, list[Filter]] = {}
        for f in filters:
            groups.setdefault(f.field.field_id, []).append(f)
        # Drive the search from the smallest eq-only indexed group, so that a lookup by
        # correlation key or status costs the size of its answer, not of the whole table.
        driving: set[str] | None = None
        driven_by: str | None = None
        for field_id, group in groups.items():
            slot = self._index.get(field_id)
            if slot is None or any(f.operator != "eq" for f in group):
                continue
            ids: set[str] = set()
            for f in group:
                ids |= slot.get(f.value.casefold(), set())
            if driving is None or len(ids) < len(driving):
                driving, driven_by = ids, field_id
        if driving is None:
            candidates: Iterable[Record] = self.records.values()
        else:
            candidates = sorted((self.records[i] for i in driving), key=lambda r: r.seq)
        rest = [group for field_id, group in groups.items() if field_id != driven_by]
        return [
            record
            for record in candidates
            if all(
                any(
                    matches(record.values.get(f.field.field_id, ""), f.operator, f.value)
                    for f in group
                )
                for group in rest
            )
        ]


@dataclass
class CherwellToken:
    access_token: str
    refresh_token: str
    client_id: str
    username: str
    access_expires_at: float
    refresh_expires_at: float


class CherwellStore:
    """Everything one Cherwell emulator instance remembers."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.tables = {bo.bus_ob_id: Table(bo) for bo in CATALOGUE.values()}
        self._next_public_id = FIRST_PUBLIC_ID
        self.tokens: dict[str, CherwellToken] = {}
        self._by_refresh: dict[str, CherwellToken] = {}

    @property
    def incidents(self) -> Table:
        return self.tables[INCIDENT_BUS_OB_ID]

    @property
    def journals(self) -> Table:
        return self.tables[JOURNAL_BUS_OB_ID]

    def new_rec_id(self) -> str:
        return f"{self._rng.getrandbits(168):042x}"

    # Tokens -----------------------------------------------------------------------------

    def issue_token(
        self, *, client_id: str, username: str, now: float, ttl: int, refresh_ttl: int
    ) -> CherwellToken:
        token = CherwellToken(
            access_token=secrets.token_urlsafe(96),
            refresh_token=secrets.token_hex(16),
            client_id=client_id,
            username=username,
            access_expires_at=now + ttl,
            refresh_expires_at=now + refresh_ttl,
        )
        self.tokens[token.access_token] = token
        self._by_refresh[token.refresh_token] = token
        return token

    def redeem_refresh(
        self, refresh_token: str, client_id: str, now: float
    ) -> CherwellToken | None:
        """The token pair a refresh token belongs to, now invalidated; None when unusable."""
        token = self._by_refresh.get(refresh_token)
        if token is None or token.refresh_expires_at <= now:
            return None
        if client_id and client_id != token.client_id:
            return None
        del self._by_refresh[refresh_token]
        self.tokens.pop(token.access_token, None)
        return token

    def is_valid(self, access_token: str, now: float) -> bool:
        token = self.tokens.get(access_token)
        return token is not None and token.access_expires_at > now

    def expire_all(self, now: float) -> None:
        for token in self.tokens.values():
            token.access_expires_at = min(token.access_expires_at, now)

    # Saves ------------------------------------------------------------------------------

    def save(self, item: SaveItem, *, now: datetime, fail_item: bool) -> SaveResult:
        """Create (no ids) or update (rec id or public id) one business object."""
        bo = CATALOGUE.get(item.bus_ob_id.strip().lower())
        if bo is None:
            return SaveResult(
                error_code="BusinessObjectNotFound",
                error_message=f"Business object {item.bus_ob_id!r} does not exist",
            )
        table = self.tables[bo.bus_ob_id]
        record: Record | None = None
        if item.rec_id or item.public_id:
            record = table.find(item.rec_id, item.public_id)
            if record is None:
                return SaveResult(
                    public_id=item.public_id,
                    rec_id=item.rec_id,
                    error_code="RecordNotFound",
                    error_message=f"{bo.name} record not found",
                )
        result = SaveResult(
            public_id=record.public_id if record else None,
            rec_id=record.rec_id if record else None,
        )
        values: dict[str, str] = {}
        for write in item.fields:
            fd = bo.resolve(write.field_id, write.name)
            shown = write.field_id or write.name or ""
            if fd is None:
                result.validation.append(
                    (shown, "FieldNotFound", f"Field {shown!r} does not exist on {bo.name}")
                )
            elif fd.read_only:
                result.validation.append(
                    (fd.field_id, "ReadOnlyField", f"Field {fd.name} is read-only")
                )
            elif fd.allowed is not None and write.value not in fd.allowed:
                allowed = ", ".join(fd.allowed)
                result.validation.append(
                    (
                        fd.field_id,
                        "InvalidFieldValue",
                        f"{write.value!r} is not a valid {fd.name} (one of: {allowed})",
                    )
                )
            else:
                values[fd.field_id] = write.value
        if bo is JOURNAL:
            self._check_journal(values, creating=record is None, result=result)
        if fail_item and not result.validation:
            target = next(iter(values), "")
            result.validation.append(
                (target, "FieldValidationFailed", "Emulated validation failure (item_error_rate)")
            )
        if result.validation:
            result.error_code = "FieldValidationFailed"
            result.error_message = "; ".join(msg for _, _, msg in result.validation)
            return result
        if not item.persist:
            # persist=false only caches the object in Cherwell: nothing is stored here.
            result.cache_key = secrets.token_hex(8)
            return result
        if record is not None:
            table.write(record, values)
            return result
        return self._create(table, values, now, result)

    def _check_journal(self, values: dict[str, str], *, creating: bool, result: SaveResult) -> None:
        parent = values.get(_PARENT.field_id)
        if parent is not None:
            values[_PARENT.field_id] = parent = parent.strip().lower()
        if creating and parent is None:
            result.validation.append((_PARENT.field_id, "RequiredField", "ParentRecID is required"))
        elif parent is not None and self.incidents.find(parent, None) is None:
            result.validation.append(
                (_PARENT.field_id, "InvalidParent", f"No Incident with RecID {parent!r}")
            )
        parent_type = values.get(_PARENT_TYPE.field_id)
        if parent_type is not None and parent_type.strip().lower() != INCIDENT_BUS_OB_ID:
            result.validation.append(
                (
                    _PARENT_TYPE.field_id,
                    "InvalidFieldValue",
                    f"ParentTypeID must be the Incident busObId {INCIDENT_BUS_OB_ID}",
                )
            )
        elif creating:
            values[_PARENT_TYPE.field_id] = INCIDENT_BUS_OB_ID

    def _create(
        self, table: Table, values: dict[str, str], now: datetime, result: SaveResult
    ) -> SaveResult:
        rec_id = self.new_rec_id()
        if table is self.incidents:
            public_id = str(self._next_public_id)
            self._next_public_id += 1
            values.setdefault(_STATUS.field_id, "New")
            values[_PUBLIC_ID.field_id] = public_id
            values[_CREATED.field_id] = cherwell_datetime(now)
        else:
            # A journal's public id is its RecID, as in Cherwell.
            public_id = rec_id
        table.insert(rec_id, public_id, values)
        result.rec_id, result.public_id = rec_id, public_id
        return result

    # Reads ------------------------------------------------------------------------------

    def read_response(
        self, bo: BusObDef, record: Record, wanted: list[FieldDef] | None = None
    ) -> dict[str, Any]:
        """A ReadResponse with the wanted fields (all fields when None)."""
        return {
            "busObId": bo.bus_ob_id,
            "busObPublicId": record.public_id,
            "busObRecId": record.rec_id,
            "fields": [
                {
                    "dirty": False,
                    "displayName": fd.name,
                    "fieldId": fd.field_id,
                    "fullFieldId": bo.full_id(fd),
                    "html": None,
                    "name": fd.name,
                    "value": record.values.get(fd.field_id, ""),
                }
                for fd in (wanted if wanted is not None else bo.fields)
            ],
            "links": [],
            "errorCode": None,
            "errorMessage": None,
            "hasError": False,
        }

    def flat_records(self, bus_ob_id: str) -> list[dict[str, str]]:
        """Every record of a business object as `{busObRecId, busObPublicId, <name>: value}`."""
        bo = CATALOGUE[bus_ob_id]
        names = {fd.field_id: fd.name for fd in bo.fields}
        return [
            {
                "busObRecId": r.rec_id,
                "busObPublicId": r.public_id,
                **{names[k]: v for k, v in r.values.items()},
            }
            for r in self.tables[bus_ob_id].records.values()
        ]


def token_times(now: float, ttl: int) -> tuple[str, str]:
    """`.issued` and `.expires` as RFC 1123 GMT strings, as OWIN writes them."""
    issued = datetime.fromtimestamp(now, UTC)
    expires = datetime.fromtimestamp(now + ttl, UTC)
    return format_datetime(issued, usegmt=True), format_datetime(expires, usegmt=True)
