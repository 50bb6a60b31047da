"""Builds the ticket JSON of one revision (docs/contracts.md §1): Spanish texts and location.

Everything the customer ticket API needs is written here: category, title/description,
location with the missing-location flag, and the SFyC work order texts; the priority and the
reason are decided by the lifecycle rules (services/lifecycle.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wm_service.kinds import KindSpec
from wm_service.services.critical import WindowStats

# The BE's TicketIn limits (docs/contracts.md §1): a longer title or subject makes the BE
# reject the whole batch it came in, so long entity names are shortened here instead.
TITLE_MAX, SUBJECT_MAX = 255, 255


@dataclass(frozen=True)
class Place:
    """Where an entity is, after merging the push's fields over the inventory."""

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
    """`text` cut to `limit` characters, the cut shown by an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "desconocido"


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
) -> dict[str, Any]:
    """The ticket JSON of one revision, JSON-ready (strings for ids and datetimes)."""
    comparison = "<" if spec.lower_is_worse else "≥"
    threshold_text = f"{comparison} {threshold:g} {spec.unit}"
    where = _where(place)
    subscribers_text = str(place.subscribers) if place.subscribers is not None else "desconocido"
    short_place = " / ".join(v for v in (place.market, place.hub) if v) or "sin ubicación"
    if action == "clear" or stats is None:
        title = f"Normalizado: {spec.label} en {entity_id} ({short_place})"
        description = (
            f"La {spec.label} de {entity_id} se normalizó: no quedan muestras críticas en las "
            f"últimas {window_hours} h (umbral crítico {threshold_text}). Ubicación: {where}. "
            f"Suscriptores afectados: {subscribers_text}."
        )
        work_order = {
            "subject": f"Cierre: {spec.label} normalizada en {entity_id}",
            "description": f"Sin muestras críticas en las últimas {window_hours} h. {description}",
        }
    else:
        prefix = "Actualización: " if action == "update" else ""
        samples = "muestra crítica" if stats.count == 1 else "muestras críticas"
        title = f"{spec.label} crítica en {entity_id} ({short_place})"
        description = (
            f"{prefix}{spec.label} en estado crítico en {entity_id} desde "
            f"{_when(stats.first_at)}: {stats.count} {samples} en las últimas {window_hours} h "
            f"(la más reciente {_when(stats.last_at)}). Peor valor: {stats.worst_value:g} "
            f"{spec.unit} (umbral crítico {threshold_text}). Ubicación: {where}. "
            f"Suscriptores afectados: {subscribers_text}. Prioridad {ticket_priority}."
        )
        work_order = {
            "subject": f"OT {ticket_priority}: revisar {spec.label} en {entity_id}",
            "description": (
                f"Revisar en campo {entity_id} ({where}). {stats.count} {samples} desde "
                f"{_when(stats.first_at)}; peor valor {stats.worst_value:g} {spec.unit} "
                f"(umbral crítico {threshold_text}). Suscriptores afectados: "
                f"{subscribers_text}."
            ),
        }
    return {
        "ticket_id": str(ticket_id),
        "dedup_key": dedup_key(spec.name, entity_id),
        "revision": revision,
        "action": action,
        "kind": spec.name,
        "category": spec.category,
        "priority": ticket_priority,
        "title": _fit(title, TITLE_MAX),
        "description": description,
        "location": {
            "market": place.market,
            "hub": place.hub,
            "ccap": place.ccap,
            "service_group": place.service_group,
            "channel": place.channel,
            "missing_location": place.missing_location,
        },
        "subscribers": place.subscribers,
        "work_order": {**work_order, "subject": _fit(work_order["subject"], SUBJECT_MAX)},
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
    }


def dedup_key(kind: str, entity_id: str) -> str:
    return f"{kind}:{entity_id}"
