"""The critical rule: which samples are critical, and which entries are critical at time T.

A sample is critical when its severity says so or, without a severity, when its value is past
the kind's critical threshold. An entry is critical at T when at least min_critical_incidents
distinct critical samples (kept across pushes, see critical_sample) fall in (T - window, T].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec

from wm_service.kinds import KindSpec
from wm_service.schemas import RuleSettings
from wm_service.services.push_decode import Push


@dataclass
class CriticalColumns:
    """This push's critical samples in the window, column-wise for one bulk INSERT."""

    entity_ids: list[str] = field(default_factory=list)
    ats: list[datetime] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


class WindowStats(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What the stored critical samples of one entity say at T."""

    count: int
    first_at: datetime
    last_at: datetime
    worst_value: float


def window_start(rules: RuleSettings, at: datetime) -> datetime:
    """Samples strictly after this instant are in the window of a push at `at`."""
    return at - timedelta(hours=rules.window_hours)


def critical_samples(push: Push, *, spec: KindSpec, rules: RuleSettings) -> CriticalColumns:
    """The push's critical samples inside the window (older ones can no longer count)."""
    limit = rules.thresholds[spec.name].critical
    lower_is_worse = spec.lower_is_worse
    since = window_start(rules, push.generated_at)
    out = CriticalColumns()
    for entry in push.entries:
        for sample in entry.samples:
            severity = sample.severity
            if severity is None:
                # spec.is_past, inlined: this loop runs once per sample of a 100 000-entry push.
                critical = sample.value < limit if lower_is_worse else sample.value >= limit
            else:
                critical = severity == "critical"
            if critical and sample.at > since:
                out.entity_ids.append(entry.entity_id)
                out.ats.append(sample.at)
                out.values.append(sample.value)
    return out


def is_critical(stats: WindowStats | None, rules: RuleSettings) -> bool:
    return stats is not None and stats.count >= rules.min_critical_incidents
