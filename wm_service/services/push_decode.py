"""Decoding of a push body (JSON or CSV) into typed structs, with per-field error paths.

JSON goes straight from the raw bytes into msgspec structs (fast and small: a 100 000-entry
push decodes in a fraction of a second); CSV rows are grouped per entity into the same
structs. `check_push` then applies the rules a type cannot express, in one pass.
"""

from __future__ import annotations

import csv
import io
import math
import mmap
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Literal, TypeVar

import msgspec

from ticketing_common.errors import ErrorDetail, ValidationFailed
from ticketing_common.text import (
    BLANK_MESSAGE,
    NUL,
    NUL_FREE,
    NUL_MESSAGE,
    VISIBLE,
    text_problem,
)

# "ok" is accepted as a synonym of "normal" (aggregators use both); only "critical" counts.
Severity = Literal["critical", "major", "minor", "normal", "ok"]
SEVERITIES: tuple[str, ...] = ("critical", "major", "minor", "normal", "ok")
MAX_ERRORS = 20
# A push body as read (wm_service/deps.py: a push's is a memory map).
Body = bytes | bytearray | mmap.mmap
# How much of a body is decoded between two calls of decode_json's `release`.
RELEASE_EVERY_BYTES = 1024 * 1024

MAX_TEXT = 200
# The text rules (no NUL; an identifier not white space only) are published in the schema but
# checked by check_push, not by msgspec: regex patterns on every string were a third of the
# decoding time of a 100 000-entry push (600 000 strings), and a JSON body can only carry a
# NUL escaped, so one search of the body tells whether any string needs looking at.
Text = Annotated[
    str, msgspec.Meta(min_length=1, max_length=MAX_TEXT, extra_json_schema={"pattern": NUL_FREE})
]
# An identifier: not white space only (a CSV cell is stripped, so CSV cannot send one either).
Identifier = Annotated[
    str, msgspec.Meta(min_length=1, max_length=MAX_TEXT, extra_json_schema={"pattern": VISIBLE})
]
_ESCAPED_NUL = b"\\u0000"
T = TypeVar("T")
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
# Subscribers are stored in Postgres integer columns: larger values must be a 422 here, not
# an error of the database driver (a 500) later.
MAX_SUBSCRIBERS = 2_147_483_647


class Sample(msgspec.Struct, gc=False):
    at: AwareDatetime
    value: float
    severity: Severity | None = None


class Entry(msgspec.Struct, gc=False):
    entity_id: Identifier
    # Once checked, only the samples that may count as critical are kept (see _Checks.entry).
    samples: tuple[Sample, ...]
    market: Text | None = None
    hub: Text | None = None
    ccap: Text | None = None
    service_group: Text | None = None
    channel: Text | None = None
    subscribers: Annotated[int, msgspec.Meta(ge=0, le=MAX_SUBSCRIBERS)] | None = None


class Push(msgspec.Struct, gc=False):
    aggregation_id: Text
    generated_at: AwareDatetime
    entries: list[Entry]


class _PushOfRawEntries(msgspec.Struct, gc=False):
    """A JSON push with its entries left undecoded: each is decoded, checked and cut down to
    what the rules need before the next, so a 100 000-entry push never exists as 100 000
    entries with all their samples at once (that was 95 MB of structs beside the body)."""

    aggregation_id: Text
    generated_at: AwareDatetime
    entries: list[msgspec.Raw]


_HEAD_DECODER = msgspec.json.Decoder(_PushOfRawEntries)
_ENTRY_DECODER = msgspec.json.Decoder(Entry)
_DECODED = msgspec.Raw(b"")
_MSGSPEC_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING_FIELD = re.compile(r"missing required field `(?P<name>[^`]+)`")
# Severities that can never make a sample critical (see services/critical.py).
_NEVER_CRITICAL = frozenset(SEVERITIES) - {"critical"}


def _fail(details: list[ErrorDetail]) -> ValidationFailed:
    summary = "; ".join(f"{d.field}: {d.message}" for d in details[:3])
    more = f" (and {len(details) - 3} more)" if len(details) > 3 else ""
    return ValidationFailed(f"invalid push: {summary}{more}", details=details[:MAX_ERRORS])


def _decoded(
    decoder: msgspec.json.Decoder[T], text: Body | msgspec.Raw, entry: int | None = None
) -> T:
    """`text` (the push, or its entry number `entry`) decoded; the first type error is
    reported with its field path."""
    try:
        return decoder.decode(text)
    except msgspec.ValidationError as exc:
        match = _MSGSPEC_PATH.match(str(exc))
        message, path = (match["message"], match["path"] or "") if match else (str(exc), "")
        at = "" if entry is None else f"entries[{entry}]"
        field = f"{at}{path}".lstrip(".")
        missing = _MISSING_FIELD.search(message)
        if missing:
            field = f"{field}.{missing['name']}" if field else missing["name"]
        raise _fail([ErrorDetail(field or "body", message)]) from exc
    except msgspec.DecodeError as exc:
        raise _fail([ErrorDetail("body", f"not valid JSON: {exc}")]) from exc
    except RecursionError as exc:
        # An unknown field nested deeper than the stack allows (msgspec skips it recursively).
        raise _fail([ErrorDetail("body", "JSON nested too deeply")]) from exc


def decode_json(
    body: Body, *, now: datetime, skew: timedelta, release: Callable[[int], None] | None = None
) -> Push:
    """Decode and check a JSON push, one entry at a time (the first type error is reported
    with its field path; the other rules collect up to MAX_ERRORS problems).

    `release(offset)`, if given, is told as decoding goes that the body's bytes before
    `offset` will not be read again (PushBody gives their memory back)."""
    head = _decoded(_HEAD_DECODER, body)
    # A JSON string can hold a NUL only escaped: without one, no string needs a look.
    # (From 0: a memory map's find starts at its current position.)
    nul_possible = body.find(_ESCAPED_NUL, 0) != -1
    checks = _Checks(head.aggregation_id, head.generated_at, now, skew, nul_possible)
    raw_entries, head.entries = head.entries, []
    # Entries lie in the body in list order, each followed by at least one byte (a comma or
    # the closing bracket) and preceded by at least `{"entries":[`: so the sum of the
    # decoded ones' lengths plus one each never passes the end of the last one decoded.
    decoded_up_to = released = 0
    for i, raw in enumerate(raw_entries):
        if checks.full:
            break
        raw_entries[i] = _DECODED  # each undecoded entry is let go as soon as it is decoded
        checks.entry(i, _decoded(_ENTRY_DECODER, raw, i))
        decoded_up_to += len(raw) + 1
        if release is not None and decoded_up_to - released >= RELEASE_EVERY_BYTES:
            release(decoded_up_to)
            released = decoded_up_to
    checks.raise_if_any()
    return Push(
        aggregation_id=head.aggregation_id, generated_at=head.generated_at, entries=checks.checked
    )


CSV_COLUMNS = (
    "entity_id",
    "market",
    "hub",
    "ccap",
    "service_group",
    "channel",
    "subscribers",
    "at",
    "value",
    "severity",
)
_CSV_REQUIRED = ("entity_id", "at", "value")
_LOCATION_COLUMNS = ("market", "hub", "ccap", "service_group", "channel")


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp with a timezone (ValueError otherwise)."""
    parsed = datetime.fromisoformat(text.strip())
    if parsed.tzinfo is None:
        raise ValueError("timezone missing (use Z or an offset such as -06:00)")
    return parsed


def decode_csv(body: Body, *, aggregation_id: str | None, generated_at: str | None) -> Push:
    """Decode a CSV push (one row per sample) grouping rows per entity, in first-seen order.

    Errors name the field as `line[N].column`, N being the line number in the file.
    """
    errors: list[ErrorDetail] = []
    if not aggregation_id:
        errors.append(ErrorDetail("aggregation_id", "query parameter required for CSV pushes"))
    elif unusable := text_problem(aggregation_id, max_length=MAX_TEXT):
        # The JSON push's Text rules, for the same field given in the query.
        errors.append(ErrorDetail("aggregation_id", unusable))
        aggregation_id = None
    stamp: datetime | None = None
    if not generated_at:
        errors.append(ErrorDetail("generated_at", "query parameter required for CSV pushes"))
    else:
        try:
            stamp = parse_timestamp(generated_at)
        except ValueError as exc:
            errors.append(ErrorDetail("generated_at", f"not an ISO 8601 timestamp: {exc}"))
    try:
        text = str(body, "utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail([*errors, ErrorDetail("body", f"CSV is not UTF-8: {exc}")]) from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [column.strip() for column in next(reader, [])]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    missing = [c for c in _CSV_REQUIRED if c not in header]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if unknown or missing or duplicated:
        for name, problem in (
            (unknown, "unknown column(s)"),
            (missing, "missing column(s)"),
            (duplicated, "repeated column(s)"),
        ):
            if name:
                errors.append(ErrorDetail("header", f"{problem}: {', '.join(name)}"))
        raise _fail(errors)
    position = {column: i for i, column in enumerate(header)}
    entries: dict[str, Entry] = {}
    samples_of: dict[str, list[Sample]] = {}
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        line = reader.line_num
        if len(row) != len(header):
            errors.append(
                ErrorDetail(f"line[{line}]", f"{len(row)} cells, the header has {len(header)}")
            )
            continue
        cell = {column: row[i].strip() for column, i in position.items()}
        entity_id = cell["entity_id"]
        unusable = text_problem(entity_id, max_length=MAX_TEXT, required=True)
        if unusable:
            errors.append(ErrorDetail(f"line[{line}].entity_id", unusable))
            continue
        sample = _csv_sample(cell, line, errors)
        entry = entries.get(entity_id)
        if entry is None:
            entry = entries[entity_id] = Entry(entity_id=entity_id, samples=())
            samples_of[entity_id] = []
        _csv_merge_entity_fields(entry, cell, line, errors)
        if sample is not None:
            samples_of[entity_id].append(sample)
        if len(errors) >= MAX_ERRORS:
            break
    if errors or stamp is None or not aggregation_id:
        raise _fail(errors)
    for entity_id, entry in entries.items():
        entry.samples = tuple(samples_of[entity_id])
    return Push(aggregation_id=aggregation_id, generated_at=stamp, entries=list(entries.values()))


def _csv_sample(cell: dict[str, str], line: int, errors: list[ErrorDetail]) -> Sample | None:
    problems = len(errors)
    at: datetime | None = None
    value = math.nan
    try:
        at = parse_timestamp(cell["at"])
    except ValueError as exc:
        errors.append(ErrorDetail(f"line[{line}].at", f"not an ISO 8601 timestamp: {exc}"))
    try:
        value = float(cell["value"])
    except ValueError:
        errors.append(ErrorDetail(f"line[{line}].value", f"not a number: {cell['value']!r}"))
    severity = cell.get("severity") or None
    if severity is not None and severity not in SEVERITIES:
        errors.append(
            ErrorDetail(
                f"line[{line}].severity",
                f"unknown severity {severity!r}; one of {', '.join(SEVERITIES)} or empty",
            )
        )
    if len(errors) > problems or at is None:
        return None
    return Sample(at=at, value=value, severity=severity)  # type: ignore[arg-type]


def _csv_merge_entity_fields(
    entry: Entry, cell: dict[str, str], line: int, errors: list[ErrorDetail]
) -> None:
    """Entity fields may repeat on every row of the entity but must not contradict."""
    for column in _LOCATION_COLUMNS:
        value = cell.get(column) or None
        if value is None:
            continue
        problem = text_problem(value, max_length=MAX_TEXT)
        if problem:
            errors.append(ErrorDetail(f"line[{line}].{column}", problem))
            continue
        current = getattr(entry, column)
        if current is None:
            setattr(entry, column, value)
        elif current != value:
            errors.append(
                ErrorDetail(
                    f"line[{line}].{column}",
                    f"{value!r} contradicts {current!r} on an earlier row of {entry.entity_id!r}",
                )
            )
    raw = cell.get("subscribers") or ""
    if not raw:
        return
    try:
        subscribers = int(raw)
    except ValueError:
        errors.append(ErrorDetail(f"line[{line}].subscribers", f"not an integer: {raw!r}"))
        return
    if subscribers < 0:
        errors.append(ErrorDetail(f"line[{line}].subscribers", "must be ≥ 0"))
    elif subscribers > MAX_SUBSCRIBERS:
        errors.append(ErrorDetail(f"line[{line}].subscribers", f"must be ≤ {MAX_SUBSCRIBERS}"))
    elif entry.subscribers is None:
        entry.subscribers = subscribers
    elif entry.subscribers != subscribers:
        errors.append(
            ErrorDetail(
                f"line[{line}].subscribers",
                f"{subscribers} contradicts {entry.subscribers} on an earlier row",
            )
        )


class _Checks:
    """The rules beyond types, entry by entry: text without NUL, an entity_id not blank, no
    future timestamps, finite values, each entity once. Timestamps may be at most `skew` after
    the push's `generated_at` (samples) or after the server's clock (`generated_at` itself).
    Collects up to MAX_ERRORS problems. `nul_possible` False (a JSON body without an escaped
    NUL) skips looking for NULs."""

    def __init__(
        self,
        aggregation_id: str,
        generated_at: datetime,
        now: datetime,
        skew: timedelta,
        nul_possible: bool,
    ) -> None:
        self.errors: list[ErrorDetail] = []
        self.nul_possible = nul_possible
        self.skew = skew
        self.latest = generated_at + skew
        # The entities seen so far (a set: a dict to their positions held 2 MB more per
        # 100 000 entries, for an error message; `checked` has the positions).
        self.seen: set[str] = set()
        self.checked: list[Entry] = []
        # Location texts and subscriber counts repeat across entries (a hub's channels, a
        # service group's subscribers): kept once each.
        self.texts: dict[str, str] = {}
        self.counts: dict[int, int] = {}
        if nul_possible and NUL in aggregation_id:
            self.errors.append(ErrorDetail("aggregation_id", NUL_MESSAGE))
        if generated_at > now + skew:
            self.errors.append(
                ErrorDetail(
                    "generated_at",
                    f"{generated_at.isoformat()} is more than {skew} ahead of the server clock",
                )
            )

    @property
    def full(self) -> bool:
        return len(self.errors) >= MAX_ERRORS

    def entry(self, i: int, entry: Entry) -> None:
        """`entry` checked and added to `checked` as kept: only its samples that may count
        as critical (a sample with another severity is checked, then dropped: nothing reads
        it again), its location texts and subscriber count shared with earlier entries'."""
        errors, entity_id = self.errors, entry.entity_id
        if self.nul_possible and NUL in entity_id:
            errors.append(ErrorDetail(f"entries[{i}].entity_id", NUL_MESSAGE))
        elif not entity_id.strip():
            errors.append(ErrorDetail(f"entries[{i}].entity_id", BLANK_MESSAGE))
        if self.nul_possible:
            errors.extend(
                ErrorDetail(f"entries[{i}].{name}", NUL_MESSAGE)
                for name in _LOCATION_COLUMNS
                if NUL in (getattr(entry, name) or "")
            )
        if entity_id in self.seen:
            first = next(n for n, e in enumerate(self.checked) if e.entity_id == entity_id)
            errors.append(
                ErrorDetail(
                    f"entries[{i}].entity_id",
                    f"duplicate entity {entity_id!r} (also entries[{first}])",
                )
            )
        self.seen.add(entity_id)
        latest, kept, bad = self.latest, [], False
        for sample in entry.samples:
            bad = bad or sample.at > latest or not math.isfinite(sample.value)
            if sample.severity not in _NEVER_CRITICAL:
                kept.append(sample)
        if bad:
            self._bad_samples(i, entry)
        entry.samples = tuple(kept) if kept else ()
        share = self.texts.setdefault
        if (market := entry.market) is not None:
            entry.market = share(market, market)
        if (hub := entry.hub) is not None:
            entry.hub = share(hub, hub)
        if (ccap := entry.ccap) is not None:
            entry.ccap = share(ccap, ccap)
        if (group := entry.service_group) is not None:
            entry.service_group = share(group, group)
        if (channel := entry.channel) is not None:
            entry.channel = share(channel, channel)
        if (subscribers := entry.subscribers) is not None:
            entry.subscribers = self.counts.setdefault(subscribers, subscribers)
        self.checked.append(entry)

    def _bad_samples(self, i: int, entry: Entry) -> None:
        for k, sample in enumerate(entry.samples):
            if sample.at > self.latest:
                self.errors.append(
                    ErrorDetail(
                        f"entries[{i}].samples[{k}].at",
                        f"entity {entry.entity_id!r}: {sample.at.isoformat()} is more than "
                        f"{self.skew} after generated_at",
                    )
                )
            if not math.isfinite(sample.value):
                self.errors.append(
                    ErrorDetail(
                        f"entries[{i}].samples[{k}].value",
                        f"entity {entry.entity_id!r}: not a finite number",
                    )
                )

    def raise_if_any(self) -> None:
        if self.errors:
            raise _fail(self.errors)


def check_push(push: Push, *, now: datetime, skew: timedelta, nul_possible: bool = True) -> None:
    """The rules beyond types (_Checks) over a push decoded whole (CSV), in place."""
    checks = _Checks(push.aggregation_id, push.generated_at, now, skew, nul_possible)
    for i, entry in enumerate(push.entries):
        if checks.full:
            break
        checks.entry(i, entry)
    checks.raise_if_any()
    push.entries = checks.checked


def decode_push(
    body: Body,
    *,
    media_type: str,
    aggregation_id: str | None,
    generated_at: str | None,
    now: datetime,
    skew: timedelta,
    release: Callable[[int], None] | None = None,
) -> Push:
    """A checked push from a JSON or CSV body (CSV takes its header fields from the query);
    `release` as for decode_json (JSON only)."""
    if media_type != "text/csv":
        return decode_json(body, now=now, skew=skew, release=release)
    push = decode_csv(body, aggregation_id=aggregation_id, generated_at=generated_at)
    # Its cells were checked for NULs as they were read (text_problem).
    check_push(push, now=now, skew=skew, nul_possible=False)
    return push
