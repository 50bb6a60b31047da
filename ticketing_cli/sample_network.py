"""A generated but realistic cable network and one aggregation per kind, for `ticketing up`.

Deterministic for a seed: a few markets, their hubs and CCAP cores, ~2 000 service groups
(fibre nodes, each with a DS and a US service group) and ~8 000 upstream channels, with a
few percent of elements in trouble. The same generator feeds the end-to-end benchmark. What
each kind measures and its healthy/troubled values come from its declaration (wm_service/kinds.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from wm_service import kinds

MARKETS = {
    "MTY": "Monterrey",
    "GDL": "Guadalajara",
    "CDMX": "Ciudad de México",
    "PUE": "Puebla",
    "LEO": "León",
    "QRO": "Querétaro",
}
KINDS = tuple(kinds.names())
SAMPLE_INTERVAL = timedelta(minutes=15)


@dataclass(frozen=True)
class ServiceGroup:
    market: str
    hub: str
    ccap: str
    node: str
    subscribers: int

    @property
    def prefix(self) -> str:
        return f"{self.hub}-{self.ccap}"


@dataclass(frozen=True)
class SampleNetwork:
    service_groups: list[ServiceGroup]
    channels_per_group: int

    def channels(self, group: ServiceGroup) -> list[str]:
        return [f"US-{slot}/0/{port}" for slot, port in _channel_slots(self.channels_per_group)]


def _channel_slots(count: int) -> list[tuple[int, int]]:
    return [(3 + i // 4, i % 4) for i in range(count)]


def build_network(
    *, service_groups: int = 2000, channels_per_group: int = 4, seed: int = 7
) -> SampleNetwork:
    rng = random.Random(seed)
    groups: list[ServiceGroup] = []
    codes = list(MARKETS)
    per_market = max(1, service_groups // len(codes))
    for index in range(service_groups):
        code = codes[min(index // per_market, len(codes) - 1)]
        within = index % per_market
        hub = f"{code}{1 + within // 120:02d}"
        ccap = f"CCAP{1 + (within // 40) % 3:02d}"
        groups.append(
            ServiceGroup(
                market=MARKETS[code],
                hub=hub,
                ccap=ccap,
                node=f"N{index:04d}",
                subscribers=rng.randint(8, 420),
            )
        )
    return SampleNetwork(groups, channels_per_group)


def topology_elements(network: SampleNetwork) -> list[dict[str, Any]]:
    """The inventory the WM uses to enrich tickets (subscribers per element)."""
    elements: list[dict[str, Any]] = []
    for group in network.service_groups:
        location = {
            "market": group.market,
            "hub": group.hub,
            "ccap": group.ccap,
            "service_group": group.node,
        }
        for side in ("US", "DS"):
            elements.append(
                {
                    "element_id": f"{group.prefix}:{group.node}-{side}",
                    **location,
                    "subscribers": group.subscribers,
                }
            )
        channels = network.channels(group)
        for channel in channels:
            elements.append(
                {
                    "element_id": f"{group.prefix}:{channel}:{group.node}",
                    **location,
                    "channel": channel,
                    "subscribers": group.subscribers // len(channels),
                }
            )
    return elements


def _targets(
    network: SampleNetwork, group: ServiceGroup, element: kinds.Element
) -> list[tuple[str, dict[str, str]]]:
    """The entries one service group contributes to a kind measuring `element`."""
    if element == "upstream-channel":
        return [
            (f"{group.prefix}:{channel}:{group.node}", {"channel": channel})
            for channel in network.channels(group)
        ]
    side = "US" if element == "us-service-group" else "DS"
    return [(f"{group.prefix}:{group.node}-{side}", {})]


def aggregation(
    network: SampleNetwork,
    kind: str,
    *,
    generated_at: datetime | None = None,
    trouble_rate: float = 0.03,
    samples_per_entry: int = 4,
    seed: int = 11,
) -> dict[str, Any]:
    """One push of `kind`: every element with its last `samples_per_entry` samples."""
    generated_at = (generated_at or datetime.now(UTC)).replace(microsecond=0)
    rng = random.Random(f"{seed}:{kind}")
    profile = kinds.get(kind).sample
    entries: list[dict[str, Any]] = []
    for group in network.service_groups:
        location = {
            "market": group.market,
            "hub": group.hub,
            "ccap": group.ccap,
            "service_group": group.node,
        }
        for entity_id, extra in _targets(network, group, profile.element):
            troubled = rng.random() < trouble_rate
            samples = []
            for step in range(samples_per_entry):
                at = generated_at - SAMPLE_INTERVAL * (samples_per_entry - 1 - step)
                # A troubled element is critical in its latest sample(s), not necessarily all.
                bad = troubled and step >= samples_per_entry // 2
                value = round(rng.uniform(*(profile.troubled if bad else profile.healthy)), 1)
                samples.append({"at": at.isoformat().replace("+00:00", "Z"), "value": value})
            entries.append({"entity_id": entity_id, **location, **extra, "samples": samples})
    stamp = generated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "aggregation_id": f"{kind}-{stamp}",
        "generated_at": generated_at.isoformat().replace("+00:00", "Z"),
        "entries": entries,
    }
