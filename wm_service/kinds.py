"""The aggregation kinds: one declaration (`KindSpec`) per kind, in one registry.

Everything kind-specific derives from it: the default thresholds and their validation
(services/settings.py), the `Kind` and `Category` types of the API schemas, the critical rule's
direction, the ticket's category, unit, label and priority rule, the CLI and the sample network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

# The network element one entry of a kind describes (CONTEXT.md §1); the sample network
# builds its entity ids from it.
Element = Literal["upstream-channel", "us-service-group", "ds-service-group"]


@dataclass(frozen=True)
class Levels:
    """Default classification limits of a KPI (operators change them at run time)."""

    critical: float
    major: float
    minor: float


@dataclass(frozen=True)
class SampleProfile:
    """How the generated sample network (ticketing_cli/sample_network.py) fakes this KPI."""

    element: Element
    healthy: tuple[float, float]
    troubled: tuple[float, float]


@dataclass(frozen=True)
class KindSpec:
    """Everything the WM knows about one aggregation kind."""

    name: str  # the URL segment and the first half of the dedup key
    unit: str
    lower_is_worse: bool
    thresholds: Levels  # defaults, CONTEXT.md §3
    value_range: tuple[float, float]  # sane bounds for thresholds of this KPI
    category: str  # Cherwell category (CONTEXT.md §2, an assumption)
    label: str  # Spanish name used in ticket texts
    sample: SampleProfile
    # The kind's own priority rule: a worst value past this is P1 whatever the audience.
    p1_worst_value: float | None = None
    # A kind the WM derives by grouping another kind's entries per service group
    # (services/correlation.py): never pushed, no thresholds of its own (its members').
    grouped_from: str | None = None

    def is_past(self, value: float, limit: float) -> bool:
        """Whether `value` is past `limit` in the bad direction (below for lower-is-worse)."""
        return value < limit if self.lower_is_worse else value >= limit


_REGISTRY: dict[str, KindSpec] = {}


def register(spec: KindSpec) -> KindSpec:
    """Declare a kind: from here on it is pushed (unless grouped), ticketed and listed."""
    if spec.name in _REGISTRY:
        raise ValueError(f"kind {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Forget a kind (tests that register their own clean up with this)."""
    del _REGISTRY[name]


def get(name: str) -> KindSpec:
    return _REGISTRY[name]


def specs() -> list[KindSpec]:
    """The kinds the aggregator pushes (each with its thresholds)."""
    return [spec for spec in _REGISTRY.values() if spec.grouped_from is None]


def names() -> list[str]:
    return [spec.name for spec in specs()]


def ticket_names() -> list[str]:
    """Every kind a ticket can have: the pushed ones and the grouped ones."""
    return list(_REGISTRY)


def grouping(name: str) -> KindSpec | None:
    """The kind that groups entries of kind `name`, if one is declared."""
    return next((s for s in _REGISTRY.values() if s.grouped_from == name), None)


def categories() -> list[str]:
    return list(dict.fromkeys(spec.category for spec in _REGISTRY.values()))


@dataclass(frozen=True)
class _OneOf:
    """Pydantic metadata: a string that must be one of `choices()` when it is validated.

    Checked at validation time, not import time, so a kind registered at run time is
    accepted by every model and route; the JSON schema shows the choices as an enum.
    `enforce=False` only documents them: history read back keeps a kind no longer declared.
    """

    what: str
    choices: Callable[[], list[str]]
    enforce: bool = True

    def _check(self, value: str) -> str:
        known = self.choices()
        if self.enforce and value not in known:
            raise ValueError(f"unknown {self.what} {value!r}; known: {', '.join(known)}")
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "enum": self.choices()}


# Requests: a kind or category must be declared. Responses: stored rows are shown as they are.
Kind = Annotated[str, _OneOf("kind", names)]
TicketKind = Annotated[str, _OneOf("kind", ticket_names)]
Category = Annotated[str, _OneOf("category", categories)]
StoredKind = Annotated[str, _OneOf("kind", names, enforce=False)]
StoredCategory = Annotated[str, _OneOf("category", categories, enforce=False)]


SNR_UPSTREAM = register(
    KindSpec(
        name="snr-upstream",
        unit="dB",
        lower_is_worse=True,
        thresholds=Levels(critical=25, major=28, minor=30),
        value_range=(0.0, 60.0),
        category="SNR",
        label="SNR upstream",
        sample=SampleProfile("upstream-channel", healthy=(31.0, 38.0), troubled=(17.0, 24.5)),
        p1_worst_value=20.0,  # CONTEXT.md §3: SNR below 20 dB is P1
    )
)
US_SERVICE_GROUP = register(
    KindSpec(
        name="us-service-group",
        unit="%",
        lower_is_worse=False,
        thresholds=Levels(critical=70, major=60, minor=50),
        value_range=(0.0, 100.0),
        category="Falla de Linea",
        label="utilización upstream del grupo de servicio",
        sample=SampleProfile("us-service-group", healthy=(15.0, 48.0), troubled=(72.0, 97.0)),
    )
)
DS_SERVICE_GROUP = register(
    KindSpec(
        name="ds-service-group",
        unit="%",
        lower_is_worse=False,
        thresholds=Levels(critical=80, major=70, minor=60),
        value_range=(0.0, 100.0),
        category="Falla de Linea",
        label="utilización downstream del grupo de servicio",
        sample=SampleProfile("ds-service-group", healthy=(20.0, 58.0), troubled=(82.0, 99.0)),
    )
)
# One ticket per service group whose upstream channels are critical together (ingress on a
# fibre node degrades them all): one truck roll, not one per channel. Opened only when the
# run-time setting group_min_channels is above 0 (services/correlation.py).
SNR_SERVICE_GROUP = register(
    KindSpec(
        name="snr-service-group",
        unit="dB",
        lower_is_worse=True,
        thresholds=SNR_UPSTREAM.thresholds,
        value_range=SNR_UPSTREAM.value_range,
        category="SNR",
        label="SNR upstream del grupo de servicio",
        sample=SNR_UPSTREAM.sample,
        p1_worst_value=SNR_UPSTREAM.p1_worst_value,
        grouped_from=SNR_UPSTREAM.name,
    )
)
