"""The ticket JSON the WM builds is always a valid shared contract document (TicketDocument).

The BE rejects a whole batch for one invalid ticket, so the WM must never build one: every
field at its WM maximum still fits ticketing_common.contract, which the BE validates with.
build_document returns a dict for speed (see its docstring); these tests are what tie it
to the model.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ticketing_common.contract import SCHEMA_VERSION, TicketDocument
from wm_service import kinds
from wm_service.kinds import KindSpec
from wm_service.services.critical import WindowStats
from wm_service.services.push_decode import MAX_SUBSCRIBERS
from wm_service.services.ticket_document import Place, build_document

LONGEST = 200  # the WM's limit on entity ids, location fields and aggregation ids
AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def longest(prefix: str) -> str:
    return (prefix * LONGEST)[:LONGEST]


def opening(
    spec: KindSpec, entity_id: str, place: Place, stats: WindowStats, *, threshold: float
) -> dict[str, Any]:
    """The document of a ticket's first revision, opened at AT by a 24 h window."""
    return build_document(
        ticket_id=uuid.uuid4(),
        spec=spec,
        entity_id=entity_id,
        revision=1,
        action="open",
        reason="critical",
        ticket_priority="P3",
        place=place,
        stats=stats,
        threshold=threshold,
        window_hours=24,
        aggregation_id="agg-1",
        generated_at=AT,
    )


@pytest.mark.parametrize("action", ["open", "update", "clear"])
@pytest.mark.parametrize("spec", kinds.specs(), ids=lambda spec: spec.name)
@pytest.mark.parametrize("located", [True, False])
def test_a_maximal_entity_builds_a_ticket_the_be_accepts(
    spec: KindSpec, action: str, located: bool
) -> None:
    """Every field at its maximum, every kind and action: the contract validates the document."""
    place = Place(
        market=longest("Monterrey ") if located else None,
        hub=longest("MTY-HUB-01 "),
        ccap=longest("CCAP02 "),
        service_group=longest("N0423 "),
        channel=longest("US-3/0/1 "),
        subscribers=MAX_SUBSCRIBERS,
    )
    stats = WindowStats(
        count=1_000_000, first_at=AT - timedelta(hours=24), last_at=AT, worst_value=-1e308
    )
    document = build_document(
        ticket_id=uuid.uuid4(),
        spec=spec,
        entity_id=longest("MTY01-CCAP02:US-3/0/1 "),
        revision=2**31 - 1,
        action=action,
        reason="recovered" if action == "clear" else "critical",
        ticket_priority="P1",
        place=place,
        stats=None if action == "clear" else stats,
        threshold=spec.value_range[1],
        window_hours=168,
        aggregation_id=longest("agg-"),
        generated_at=AT,
    )
    ticket = TicketDocument.model_validate(document)
    assert ticket.title.endswith("…") and len(ticket.title) == 255
    assert len(ticket.work_order.subject) <= 255
    assert (ticket.schema_version, ticket.kind, ticket.category) == (
        SCHEMA_VERSION,
        spec.name,
        spec.category,
    )
    # extra="allow" would keep a misspelt key silently: every key must be a contract field.
    assert set(document) <= set(TicketDocument.model_fields)
    assert set(document["location"]) <= set(type(ticket.location).model_fields)


def test_the_issue_example_is_cut_with_an_ellipsis() -> None:
    """A 180-character us-service-group entity in Monterrey / MTY-HUB-01: title cut to 255."""
    place = Place("Monterrey", "MTY-HUB-01", "CCAP01", "N1", None, 10)
    stats = WindowStats(count=1, first_at=AT, last_at=AT, worst_value=0.5)
    entity_id = "S" * 180
    document = opening(kinds.US_SERVICE_GROUP, entity_id, place, stats, threshold=0.3)
    assert len(document["title"]) == 255 and document["title"].endswith("…")
    assert document["title"].startswith(f"{kinds.US_SERVICE_GROUP.label} crítica en SSS")
    assert entity_id in document["description"]  # the full name stays in the description


# A revision as the WM sent it before the contract had schema_version and reason.
TODAYS_DOCUMENT = {
    "ticket_id": "3f0c2a8e-1b7d-4c55-9a61-0d9b8f5e2a11",
    "dedup_key": "snr-upstream:MTY01-CCAP02:US-3/0/1",
    "revision": 2,
    "action": "update",
    "kind": "snr-upstream",
    "category": "SNR",
    "priority": "P2",
    "title": "SNR upstream crítica en MTY01-CCAP02:US-3/0/1 (Monterrey / MTY01)",
    "description": "Actualización: SNR upstream en estado crítico …",
    "location": {
        "market": "Monterrey",
        "hub": "MTY01",
        "ccap": "CCAP02",
        "service_group": "N0423",
        "channel": "US-3/0/1",
        "missing_location": False,
    },
    "subscribers": 120,
    "work_order": {"subject": "OT P2: revisar SNR upstream", "description": "Revisar en campo …"},
    "generated_at": "2026-11-22T10:00:00+00:00",
    "entity_id": "MTY01-CCAP02:US-3/0/1",
    "critical_samples": 2,
    "worst_value": 21.5,
    "unit": "dB",
    "threshold": 25.0,
    "first_critical_at": "2026-11-22T09:30:00+00:00",
    "last_critical_at": "2026-11-22T09:45:00+00:00",
    "aggregation_id": "snr-upstream-2026-11-22T10:00:00Z",
}


def test_a_document_of_todays_shape_is_still_accepted() -> None:
    """Without schema_version and reason, a document is a valid version-1 document."""
    ticket = TicketDocument.model_validate(TODAYS_DOCUMENT)
    assert (ticket.schema_version, ticket.reason) == (1, None)
    assert ticket.location.channel == "US-3/0/1"


def test_texts_give_sample_times_in_utc_whatever_zone_they_came_in() -> None:
    """The texts say "UTC": a window's times pushed with an offset are written in UTC (and a
    time seen before in another zone is not written with that zone's wall clock)."""
    place = Place("Monterrey", "MTY-HUB-01", "CCAP01", "N1", None, 10)
    spec = kinds.specs()[0]
    local = timezone(timedelta(hours=-6))
    for first_at in (AT, AT.astimezone(local)):
        stats = WindowStats(
            count=2, first_at=first_at, last_at=AT + timedelta(minutes=7), worst_value=0.5
        )
        document = opening(
            spec, "MTY01-CCAP01:US-1/0/0", place, stats, threshold=spec.value_range[1]
        )
        assert "desde 2026-11-22 10:00 UTC" in document["description"]
        assert "(la más reciente 2026-11-22 10:07 UTC)" in document["description"]
        assert "desde 2026-11-22 10:00 UTC" in document["work_order"]["description"]
