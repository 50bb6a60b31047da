"""What the BE learns from every call to a platform: request metrics and its login state.

Each platform client gets one `PlatformWatch` (platforms/registry.py); the circuit itself
is driven by the sender, which knows whether a failure was the platform's or the ticket's.
"""

from __future__ import annotations

from be_service.metrics import BEMetrics, status_class
from be_service.pipeline.health import PlatformHealth
from be_service.pipeline.steps import CURRENT_OPERATION


class PlatformWatch:
    """A CallObserver (platforms/http.py) for one platform."""

    def __init__(self, health: PlatformHealth, metrics: BEMetrics) -> None:
        self._health = health
        self._metrics = metrics

    def request(self, status: int | None, seconds: float, *, operation: str | None = None) -> None:
        name, platform = operation or CURRENT_OPERATION.get(), self._health.platform
        self._metrics.platform_requests.labels(platform, name, status_class(status)).inc()
        self._metrics.platform_seconds.labels(platform, name).observe(seconds)

    def login(self, *, ok: bool) -> None:
        self._health.login(ok=ok)
        if not ok:
            self._metrics.login_failures.labels(self._health.platform).inc()
