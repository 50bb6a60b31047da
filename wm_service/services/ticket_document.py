"""Builds the ticket JSON of one revision (docs/contracts.md §1): Spanish texts and location.

Everything the customer ticket API needs is written here: category, title/description,
location with the missing-location flag, and the SFyC work order texts; the priority and the
reason are decided by the lifecycle rules (services/lifecycle.py).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec
from msgspec.structs import replace

from ticketing_common.contract import SCHEMA_VERSION, SUBJECT_MAX, TITLE_MAX
from wm_service.kinds import KindSpec
from wm_service.services.critical import WindowStats


class Place(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Where an entity is, after merging the push's fields over the inventory (a struct:
    a big push stores it with its planned revisions, services/push_plan.py)."""

    market: str | None
    hub: str | None
    ccap: str | None
    service_group: str | None
    channel: str | None
    subscribers: int | None

    @property
    def missing_location(self) -> bool:
        # A crew cannot be dispatched without market, hub and CCAP.
        return self.market is None or self.hub is None or self.ccap is None


def _fit(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, the cut shown by an ellipsis.

    Titles and subjects are cut to the contract's limits: a longer one would make the BE
    reject the whole batch it came in.
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(at: datetime | None) -> str:
    return _utc_minute(at) if at else "desconocido"


# A push's samples share a few timestamps (the aggregator's sampling instants), and a problem
# text names two of them three times: strftime cost 2.2 us a call, ~7 us a document.
@lru_cache(maxsize=4096)
def _utc_minute(at: datetime) -> str:
    # Equal instants in other zones share a cache entry: the text is in UTC either way.
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _where(place: Place) -> str:
    if place.missing_location:
        known = ", ".join(
            f"{label} {value}"
            for label, value in (
                ("mercado", place.market),
                ("hub", place.hub),
                ("CCAP", place.ccap),
                ("grupo de servicio", place.service_group),
                ("canal", place.channel),
            )
            if value
        )
        suffix = f" (datos parciales: {known})" if known else ""
        return "ubicación desconocida: elemento no registrado en el inventario" + suffix
    parts = [f"mercado {place.market}", f"hub {place.hub}", f"CCAP {place.ccap}"]
    if place.service_group:
        parts.append(f"grupo de servicio {place.service_group}")
    if place.channel:
        parts.append(f"canal {place.channel}")
    return ", ".join(parts)


class _Texts(msgspec.Struct, frozen=True):
    """The Spanish texts of one revision."""

    title: str
    description: str
    subject: str
    work_order: str


class _Facts(msgspec.Struct, frozen=True):
    """What every text of one revision mentions, already written out."""

    label: str
    unit: str
    entity_id: str
    where: str
    short_place: str
    subscribers: str
    threshold: str
    window_hours: int


def _clear_texts(f: _Facts) -> _Texts:
    description = (
        f"La {f.label} de {f.entity_id} se normalizó: no quedan muestras críticas en las "
        f"últimas {f.window_hours} h (umbral crítico {f.threshold}). Ubicación: {f.where}. "
        f"Suscriptores afectados: {f.subscribers}."
    )
    return _Texts(
        title=f"Normalizado: {f.label} en {f.entity_id} ({f.short_place})",
        description=description,
        subject=f"Cierre: {f.label} normalizada en {f.entity_id}",
        work_order=f"Sin muestras críticas en las últimas {f.window_hours} h. {description}",
    )


def _problem_texts(f: _Facts, stats: WindowStats, *, action: str, ticket_priority: str) -> _Texts:
    prefix = "Actualización: " if action == "update" else ""
    samples = "muestra crítica" if stats.count == 1 else "muestras críticas"
    worst = f"{stats.worst_value:g}"
    return _Texts(
        title=f"{f.label} crítica en {f.entity_id} ({f.short_place})",
        description=(
            f"{prefix}{f.label} en estado crítico en {f.entity_id} desde "
            f"{_when(stats.first_at)}: {stats.count} {samples} en las últimas {f.window_hours} h "
            f"(la más reciente {_when(stats.last_at)}). Peor valor: {worst} {f.unit} "
            f"(umbral crítico {f.threshold}). Ubicación: {f.where}. "
            f"Suscriptores afectados: {f.subscribers}. Prioridad {ticket_priority}."
        ),
        subject=f"OT {ticket_priority}: revisar {f.label} en {f.entity_id}",
        work_order=(
            f"Revisar en campo {f.entity_id} ({f.where}). {stats.count} {samples} desde "
            f"{_when(stats.first_at)}; peor valor {worst} {f.unit} "
            f"(umbral crítico {f.threshold}). Suscriptores afectados: {f.subscribers}."
        ),
    )


def _texts(
    f: _Facts,
    stats: WindowStats | None,
    *,
    action: str,
    ticket_priority: str,
    note: tuple[str, str] | None,
) -> _Texts:
    if action == "clear" or stats is None:
        texts = _clear_texts(f)
    else:
        texts = _problem_texts(f, stats, action=action, ticket_priority=ticket_priority)
    if note is None:
        return texts
    title = f"{note[0]}: {f.label} en {f.entity_id} ({f.short_place})"
    if (action == "clear") == (stats is not None):
        # A clear of a still-critical entity (a grouped channel) is no recovery, and a note
        # without statistics (a group whose channels are all under a window) reports none:
        # the note says all there is.
        text = f"{note[1]} Ubicación: {f.where}."
        return replace(texts, title=title, description=text, work_order=text)
    return replace(texts, title=title, description=f"{note[1]} {texts.description}")


def _worst_first(channels: tuple[tuple[str, float | None], ...]) -> list[tuple[str, float | None]]:
    return sorted(channels, key=lambda c: (c[1] is None, c[1] if c[1] is not None else 0.0))


def _with_channels(
    texts: _Texts, channels: tuple[tuple[str, float | None], ...] | None, unit: str
) -> _Texts:
    """A service-group ticket's texts end with its critical channels, worst first."""
    if channels is None:
        return texts
    items = ", ".join(
        f"{entity} ({worst:g} {unit})" if worst is not None else entity
        for entity, worst in _worst_first(channels)
    )
    listed = f"Canales críticos ({len(channels)}): {items}."
    return replace(
        texts,
        description=f"{texts.description} {listed}",
        work_order=f"{texts.work_order} {listed}",
    )


def _channel_fields(channels: tuple[tuple[str, float | None], ...] | None) -> dict[str, Any]:
    """The `channels` field of a service-group ticket (an extra of the contract)."""
    if channels is None:
        return {}
    return {
        "channels": [
            {"entity_id": entity, "worst_value": worst} for entity, worst in _worst_first(channels)
        ]
    }


def _location(place: Place) -> dict[str, Any]:
    return {
        "market": place.market,
        "hub": place.hub,
        "ccap": place.ccap,
        "service_group": place.service_group,
        "channel": place.channel,
        "missing_location": place.missing_location,
    }


def build_document(
    *,
    ticket_id: uuid.UUID,
    spec: KindSpec,
    entity_id: str,
    revision: int,
    action: str,
    reason: str,
    ticket_priority: str,
    place: Place,
    stats: WindowStats | None,
    threshold: float,
    window_hours: int,
    aggregation_id: str,
    generated_at: datetime,
    note: tuple[str, str] | None = None,
    channels: tuple[tuple[str, float | None], ...] | None = None,
) -> dict[str, Any]:
    """One revision as the JSON of ticketing_common.contract.TicketDocument (strings for ids
    and datetimes).

    A dict encoded by msgspec, not the pydantic model: building and serialising the model
    costs ~26 µs a document against ~15 µs (0.2 s more for a 20 000-ticket push).
    tests/wm/test_ticket_document_contract.py validates it against the model instead.
    `note` (title, text) heads the texts of a revision that is a note of its own (a
    maintenance window's start or end): the BE turns an update into a Cherwell journal note.
    `channels` lists the critical channels of a service-group ticket, worst first.
    """
    facts = _Facts(
        label=spec.label,
        unit=spec.unit,
        entity_id=entity_id,
        where=_where(place),
        short_place=" / ".join(v for v in (place.market, place.hub) if v) or "sin ubicación",
        subscribers=str(place.subscribers) if place.subscribers is not None else "desconocido",
        threshold=f"{'<' if spec.lower_is_worse else '≥'} {threshold:g} {spec.unit}",
        window_hours=window_hours,
    )
    texts = _texts(facts, stats, action=action, ticket_priority=ticket_priority, note=note)
    texts = _with_channels(texts, channels, spec.unit)
    return {
        "schema_version": SCHEMA_VERSION,
        "ticket_id": str(ticket_id),
        "dedup_key": dedup_key(spec.name, entity_id),
        "revision": revision,
        "action": action,
        "kind": spec.name,
        "category": spec.category,
        "priority": ticket_priority,
        "title": _fit(texts.title, TITLE_MAX),
        "description": texts.description,
        "location": _location(place),
        "subscribers": place.subscribers,
        "work_order": {
            "subject": _fit(texts.subject, SUBJECT_MAX),
            "description": texts.work_order,
        },
        "generated_at": generated_at.isoformat(),
        "reason": reason,
        "entity_id": entity_id,
        "critical_samples": stats.count if stats else 0,
        "worst_value": stats.worst_value if stats else None,
        "unit": spec.unit,
        "threshold": threshold,
        "first_critical_at": stats.first_at.isoformat() if stats else None,
        "last_critical_at": stats.last_at.isoformat() if stats else None,
        "aggregation_id": aggregation_id,
        **_channel_fields(channels),
    }


def dedup_key(kind: str, entity_id: str) -> str:
    return f"{kind}:{entity_id}"
