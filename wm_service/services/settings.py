"""Run-time rule settings (thresholds, window, count), persisted in `wm_setting`.

Every push reads them at its start, so a PATCH is in effect for the next push without a
restart. Defaults are CONTEXT.md §3; the stored document only holds what operators changed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.errors import ErrorDetail, ValidationFailed
from wm_service.kinds import KINDS, Kind
from wm_service.models import WMSetting
from wm_service.schemas import RuleSettings, RuleSettingsPatch, Thresholds

RULES = "rules"

DEFAULT_RULES = RuleSettings(
    window_hours=24,
    min_critical_incidents=1,
    thresholds={
        Kind.snr_upstream: Thresholds(critical=25, major=28, minor=30),
        Kind.us_service_group: Thresholds(critical=70, major=60, minor=50),
        Kind.ds_service_group: Thresholds(critical=80, major=70, minor=60),
    },
)


def threshold_problems(kind: Kind, limits: Thresholds) -> list[ErrorDetail]:
    """Why a kind's thresholds are unusable: out of the KPI's range or in the wrong order."""
    info = KINDS[kind]
    low, high = info.value_range
    problems = [
        ErrorDetail(
            f"thresholds.{kind.value}.{level}", f"must be between {low:g} and {high:g} {info.unit}"
        )
        for level in ("critical", "major", "minor")
        if not low <= getattr(limits, level) <= high
    ]
    if info.lower_is_worse and not limits.critical < limits.major < limits.minor:
        problems.append(
            ErrorDetail(
                f"thresholds.{kind.value}",
                "lower is worse for this KPI: critical < major < minor is required",
            )
        )
    if not info.lower_is_worse and not limits.critical > limits.major > limits.minor:
        problems.append(
            ErrorDetail(
                f"thresholds.{kind.value}",
                "higher is worse for this KPI: critical > major > minor is required",
            )
        )
    return problems


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


async def get_rules(session: AsyncSession) -> RuleSettings:
    """The rules in force: the defaults overlaid with what operators stored."""
    row = await session.get(WMSetting, RULES)
    if row is None:
        return DEFAULT_RULES
    return RuleSettings.model_validate(_merge(DEFAULT_RULES.model_dump(mode="json"), row.value))


async def update_rules(session: AsyncSession, *, patch: RuleSettingsPatch) -> RuleSettings:
    """Apply a partial change, validate the whole result, persist it (flush, no commit)."""
    current = await get_rules(session)
    change = patch.model_dump(mode="json", exclude_none=True)
    try:
        candidate = RuleSettings.model_validate(_merge(current.model_dump(mode="json"), change))
    except ValidationError as exc:
        details = [
            ErrorDetail(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()
        ]
        raise ValidationFailed("invalid settings", details=details) from exc
    problems = [
        problem
        for kind, limits in candidate.thresholds.items()
        for problem in threshold_problems(kind, limits)
    ]
    if problems:
        raise ValidationFailed(
            "invalid settings: " + "; ".join(f"{p.field}: {p.message}" for p in problems),
            details=problems,
        )
    value = candidate.model_dump(mode="json")
    now = datetime.now(UTC)
    await session.exec(
        insert(WMSetting)
        .values(name=RULES, value=value, updated_at=now)
        .on_conflict_do_update(index_elements=["name"], set_={"value": value, "updated_at": now})
    )
    return candidate
