"""Fault injection for the emulators: slow answers, failed requests, lost answers, bad items.

The control API (`control.py`) installs a `FaultSpec` per platform; every platform request
asks `FaultBoard.decide` what to do before it is handled (see `state.guarded`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Platform = Literal["cherwell", "sfyc"]
PLATFORMS: tuple[Platform, ...] = ("cherwell", "sfyc")


class FaultSpec(BaseModel):
    """Body of `POST /_emulator/faults` (docs/contracts.md §6)."""

    model_config = ConfigDict(extra="forbid")

    platform: Literal["cherwell", "sfyc", "all"] = "all"
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    status: int = Field(default=503, ge=400, le=599)
    retry_after: int | None = Field(default=None, ge=0)
    latency_ms: int = Field(default=0, ge=0, le=600_000)
    fail_next: int = Field(default=0, ge=0)
    item_error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    lose_response_next: int = Field(default=0, ge=0)
    endpoint: str | None = Field(
        default=None, description="Only requests whose path contains this text are affected."
    )


@dataclass(frozen=True)
class FaultDecision:
    """What one request suffers: a delay, then a failure, a lost answer or bad batch items."""

    latency_seconds: float = 0.0
    fail_status: int | None = None
    retry_after: int | None = None
    lose_response: bool = False
    item_error_rate: float = 0.0


NO_FAULT = FaultDecision()


class FaultBoard:
    """The faults in force per platform. Callers serialise access (the state's lock)."""

    def __init__(self) -> None:
        self._active: dict[Platform, FaultSpec] = {}

    def install(self, spec: FaultSpec) -> None:
        targets = PLATFORMS if spec.platform == "all" else (spec.platform,)
        for platform in targets:
            # A copy per platform: the fail_next/lose_response_next counters are separate.
            self._active[platform] = spec.model_copy(update={"platform": platform})

    def clear(self) -> None:
        self._active.clear()

    def describe(self) -> dict[str, dict[str, object] | None]:
        return {p: (s.model_dump() if (s := self._active.get(p)) else None) for p in PLATFORMS}

    def decide(
        self, platform: Platform, path: str, *, is_token: bool, rng: random.Random
    ) -> FaultDecision:
        spec = self._active.get(platform)
        if spec is None or (spec.endpoint is not None and spec.endpoint not in path):
            return NO_FAULT
        latency = spec.latency_ms / 1000
        # A token request is only failed when the operator aimed the fault at it: otherwise
        # a blanket error rate would mostly test the client's login, not its API calls.
        may_fail = not is_token or spec.endpoint is not None
        if may_fail and spec.fail_next > 0:
            spec.fail_next -= 1
            return FaultDecision(latency, spec.status, spec.retry_after)
        if may_fail and spec.error_rate > 0 and rng.random() < spec.error_rate:
            return FaultDecision(latency, spec.status, spec.retry_after)
        lose = may_fail and spec.lose_response_next > 0
        if lose:
            spec.lose_response_next -= 1
        return FaultDecision(latency, lose_response=lose, item_error_rate=spec.item_error_rate)
