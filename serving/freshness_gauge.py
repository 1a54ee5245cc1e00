"""Per-view freshness gauges on ``/metrics``, refreshed by a background thread.

The figures come from ``feature_repo.freshness`` (the materialization state file,
against the service's clock), so they are current without traffic, and a scrape
costs nothing extra. Ages follow the simulated clock in a replay, like serving.
"""

from __future__ import annotations

import logging
import threading

import bentoml

from feature_repo.clock import Clock
from feature_repo.freshness import assess, schedule_period
from feature_repo.settings import Settings
from feature_repo.state_files import MaterializationState

log = logging.getLogger(__name__)

AGE = bentoml.metrics.Gauge(
    name="feastline_feature_view_age_seconds",
    documentation="Age of the newest row of each feature view in the online store",
    labelnames=["view"],
    multiprocess_mode="livemax",
)
TTL = bentoml.metrics.Gauge(
    name="feastline_feature_view_ttl_seconds",
    documentation="Each feature view's TTL (0: never expires); older values are masked",
    labelnames=["view"],
    multiprocess_mode="livemax",
)
SLO_BREACH = bentoml.metrics.Gauge(
    name="feastline_feature_view_slo_breach",
    documentation="1 when a feature view breaks its freshness objective (status's SLO column)",
    labelnames=["view"],
    multiprocess_mode="livemax",
)


class FreshnessGauges:
    """Updates the gauges every ``interval`` seconds until ``close``."""

    def __init__(self, settings: Settings, interval: float = 5.0) -> None:
        self.settings = settings
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="freshness-gauges", daemon=True)
        self._thread.start()

    def update(self) -> None:
        state = MaterializationState(self.settings)
        now = Clock(self.settings).now().instant
        for view in assess(state, now, schedule_period(state, self.settings.schedule_period)):
            if view.age_seconds is not None:
                AGE.labels(view=view.view).set(view.age_seconds)
            TTL.labels(view=view.view).set(view.ttl_seconds or 0)
            SLO_BREACH.labels(view=view.view).set(int(view.breaks_slo))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.update()
            except Exception as err:  # a gauge must never take the service down
                log.warning("freshness gauges not updated", extra={"error": str(err)})
            self._stop.wait(self.interval)

    def close(self) -> None:
        self._stop.set()
