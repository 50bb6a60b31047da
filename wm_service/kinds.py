"""The three aggregation kinds and what the WM knows about each (unit, direction, category).

Used by ingestion (which kinds exist), the critical rule (which way is worse) and ticket
building (category, unit and Spanish label); one table so a new kind is added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    snr_upstream = "snr-upstream"
    us_service_group = "us-service-group"
    ds_service_group = "ds-service-group"


@dataclass(frozen=True)
class KindInfo:
    category: str  # Cherwell category (CONTEXT.md §2, an assumption)
    unit: str
    lower_is_worse: bool
    label: str  # Spanish name used in ticket texts
    value_range: tuple[float, float]  # sane bounds for thresholds of this KPI


KINDS: dict[Kind, KindInfo] = {
    Kind.snr_upstream: KindInfo("SNR", "dB", True, "SNR upstream", (0.0, 60.0)),
    Kind.us_service_group: KindInfo(
        "Falla de Linea", "%", False, "utilización upstream del grupo de servicio", (0.0, 100.0)
    ),
    Kind.ds_service_group: KindInfo(
        "Falla de Linea", "%", False, "utilización downstream del grupo de servicio", (0.0, 100.0)
    ),
}
