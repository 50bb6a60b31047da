"""Topology inventory: bulk upsert of elements and the lookup that locates a push's entities.

A push's own fields win over the inventory; an entity unknown to the inventory falls back to
its service group's element (which gives market, hub, CCAP and subscribers).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.errors import ErrorDetail, ValidationFailed
from wm_service.schemas import TopologyElementIn, TopologyUpload
from wm_service.services.bulk import driver_connection
from wm_service.services.csv_rows import parse_csv_rows
from wm_service.services.push_decode import Entry
from wm_service.services.ticket_document import Place

TOPOLOGY_COLUMNS = (
    "element_id",
    "market",
    "hub",
    "ccap",
    "service_group",
    "channel",
    "subscribers",
)
_FIELDS = TOPOLOGY_COLUMNS[1:]


def parse_topology_csv(body: bytes | bytearray) -> list[TopologyElementIn]:
    """CSV with a header of TOPOLOGY_COLUMNS (element_id required); errors as line[N].field."""
    return parse_csv_rows(
        body,
        model=TopologyElementIn,
        columns=TOPOLOGY_COLUMNS,
        required=("element_id",),
        what="topology",
    )


def _field(loc: tuple[int | str, ...]) -> str:
    """('elements', 3, 'hub') -> 'elements[3].hub'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def parse_topology(body: bytes | bytearray, *, media_type: str) -> list[TopologyElementIn]:
    """Elements from a JSON ({"elements": [...]}) or CSV body; 422 naming the bad field."""
    if media_type == "text/csv":
        return parse_topology_csv(body)
    try:
        return TopologyUpload.model_validate_json(body).elements
    except ValidationError as exc:
        details = [ErrorDetail(_field(e["loc"]), e["msg"]) for e in exc.errors()[:20]]
        raise ValidationFailed(
            f"invalid topology: {details[0].field}: {details[0].message}", details=details
        ) from exc


async def upsert_elements(session: AsyncSession, *, elements: list[TopologyElementIn]) -> int:
    """Insert or replace the given elements in one statement; returns how many."""
    first_seen: dict[str, int] = {}
    duplicates = [
        ErrorDetail(f"elements[{i}].element_id", f"duplicate element {e.element_id!r}")
        for i, e in enumerate(elements)
        if first_seen.setdefault(e.element_id, i) != i
    ]
    if duplicates:
        raise ValidationFailed("duplicate element_id in one upload", details=duplicates[:20])
    if not elements:
        return 0
    connection = await driver_connection(session)
    await connection.execute(
        """
        INSERT INTO topology_element
            (element_id, market, hub, ccap, service_group, channel, subscribers, updated_at)
        SELECT e.*, $8::timestamptz
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::int[]) AS e
        ON CONFLICT (element_id) DO UPDATE SET
            market = EXCLUDED.market, hub = EXCLUDED.hub, ccap = EXCLUDED.ccap,
            service_group = EXCLUDED.service_group, channel = EXCLUDED.channel,
            subscribers = EXCLUDED.subscribers, updated_at = EXCLUDED.updated_at
        """,
        [e.element_id for e in elements],
        *([getattr(e, name) for e in elements] for name in _FIELDS),
        datetime.now(UTC),
    )
    return len(elements)


def _pick(name: str, entry: Entry, *sources: asyncpg.Record | None) -> Any:
    """The push's value of `name`, else the first inventory source that has one."""
    pushed = getattr(entry, name)
    if pushed is not None:
        return pushed
    for source in sources:
        if source is not None and source[name] is not None:
            return source[name]
    return None


async def locate(session: AsyncSession, *, entries: Iterable[Entry]) -> dict[str, Place]:
    """Place of each entry: its own fields, else its inventory element, else its group's."""
    entries = list(entries)
    keys = {e.entity_id for e in entries} | {e.service_group for e in entries if e.service_group}
    inventory: dict[str, asyncpg.Record] = {}
    if keys:
        connection = await driver_connection(session)
        rows = await connection.fetch(
            "SELECT element_id, market, hub, ccap, service_group, channel, subscribers "
            "FROM topology_element WHERE element_id = ANY($1::text[])",
            list(keys),
        )
        inventory = {row["element_id"]: row for row in rows}
    places: dict[str, Place] = {}
    for entry in entries:
        own = inventory.get(entry.entity_id)
        group_id = entry.service_group or (own["service_group"] if own else None)
        group = inventory.get(group_id) if group_id else None
        places[entry.entity_id] = Place(
            market=_pick("market", entry, own, group),
            hub=_pick("hub", entry, own, group),
            ccap=_pick("ccap", entry, own, group),
            service_group=_pick("service_group", entry, own, group),
            # A group's channel is not the entity's: only the entity's own element gives one.
            channel=_pick("channel", entry, own),
            subscribers=_pick("subscribers", entry, own, group),
        )
    return places
