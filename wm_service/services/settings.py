"""Run-time rule settings (thresholds, window, count), persisted in `wm_setting`.

Every push reads them at its start, so a PATCH is in effect for the next push without a
restart. Defaults are CONTEXT.md §3; the stored document only holds what operators changed.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from ticketing_common.errors import ErrorDetail, ValidationFailed
from wm_service import kinds
from wm_service.models import WMSetting
from wm_service.schemas import RuleSettings, RuleSettingsPatch, Thresholds

RULES = "rules"


def default_rules() -> RuleSettings:
    """CONTEXT.md §3, with every registered kind's default thresholds (read at call time)."""
    return RuleSettings(
        window_hours=24,
        min_critical_incidents=1,
        group_min_channels=0,  # service-group correlation off
        thresholds={spec.name: Thresholds(**asdict(spec.thresholds)) for spec in kinds.specs()},
    )


def threshold_problems(kind: str, limits: Thresholds) -> list[ErrorDetail]:
    """Why a kind's thresholds are unusable: out of the KPI's range or in the wrong order."""
    spec = kinds.get(kind)
    low, high = spec.value_range
    problems = [
        ErrorDetail(
            f"thresholds.{kind}.{level}", f"must be between {low:g} and {high:g} {spec.unit}"
        )
        for level in ("critical", "major", "minor")
        if not low <= getattr(limits, level) <= high
    ]
    if spec.lower_is_worse:
        ordered = limits.critical < limits.major < limits.minor
        rule = "lower is worse for this KPI: critical < major < minor is required"
    else:
        ordered = limits.critical > limits.major > limits.minor
        rule = "higher is worse for this KPI: critical > major > minor is required"
    if not ordered:
        problems.append(ErrorDetail(f"thresholds.{kind}", rule))
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
    defaults = default_rules()
    row = await session.get(WMSetting, RULES)
    if row is None:
        return defaults
    stored = dict(row.value)
    # Thresholds of a kind no longer declared are ignored rather than failing every push.
    known = set(kinds.names())
    stored["thresholds"] = {k: v for k, v in stored.get("thresholds", {}).items() if k in known}
    return RuleSettings.model_validate(_merge(defaults.model_dump(mode="json"), stored))


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
