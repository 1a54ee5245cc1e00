"""Prometheus metrics, served by BentoML at ``/metrics`` (aggregated over workers)."""

from __future__ import annotations

from collections import Counter
from itertools import chain
from typing import Any

import bentoml


class ServiceMetrics:
    def __init__(self) -> None:
        self.online_feature_seconds = bentoml.metrics.Histogram(
            name="feastline_online_feature_seconds",
            documentation="Time to read a request's features from the online store via Feast",
            buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 2.5),
        )
        self.model_seconds = bentoml.metrics.Histogram(
            name="feastline_model_seconds",
            documentation="Time spent in the model for one request",
            buckets=(0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05),
        )
        self.flights = bentoml.metrics.Counter(
            name="feastline_flights_scored_total", documentation="Flights scored"
        )
        self.missing = bentoml.metrics.Counter(
            name="feastline_missing_features_total",
            documentation="Missing feature values passed to the model, by feature",
            labelnames=["feature"],
        )
        self.stale = bentoml.metrics.Counter(
            name="feastline_stale_features_total",
            documentation="Online values older than their view's TTL (masked as missing)",
            labelnames=["feature"],
        )
        self.served_rows_dropped = bentoml.metrics.Counter(
            name="feastline_served_rows_dropped_total",
            documentation="Served rows the monitoring queues dropped (queue full)",
        )
        # Which model each live worker serves, and whether it scores on the fast path
        # (1) or fell back to predict_proba (0): see model_registry/sklearn_compat.py.
        self.model_info = bentoml.metrics.Gauge(
            name="feastline_model_info",
            documentation="The champion a worker serves (1), by tag",
            labelnames=["tag"],
            multiprocess_mode="livemax",
        )
        self.fast_scoring = bentoml.metrics.Gauge(
            name="feastline_fast_scoring",
            documentation="1 when the model scores on the fast path, 0 after a fallback",
            labelnames=["tag"],
            multiprocess_mode="livemin",
        )
        self._tag: str | None = None
        self._dropped = 0
        self.store_unavailable = bentoml.metrics.Counter(
            name="feastline_online_store_unavailable_total",
            documentation="Requests refused with 503 because the online store was unreachable",
        )

    def serving(self, tag: str, fast: bool) -> None:
        """The model this worker serves now; cheap to call on every request."""
        if tag == self._tag:
            return
        if self._tag is not None:
            self.model_info.labels(tag=self._tag).set(0)
        self.model_info.labels(tag=tag).set(1)
        self.fast_scoring.labels(tag=tag).set(1 if fast else 0)
        self._tag = tag

    def dropped(self, total: int) -> None:
        """``total``: rows this worker's monitoring queues dropped since it started."""
        if total > self._dropped:
            self.served_rows_dropped.inc(total - self._dropped)
            self._dropped = total

    def observe(self, scored: Any, flights: int) -> None:
        self.online_feature_seconds.observe(scored.feature_seconds)
        self.model_seconds.observe(scored.model_seconds)
        self.flights.inc(flights)
        # One increment per feature, not per value: a 50-flight request can have a
        # thousand missing values, and each labelled increment costs ~4 us.
        for counter, per_flight in ((self.missing, scored.missing), (self.stale, scored.stale)):
            for name, count in Counter(chain.from_iterable(per_flight)).items():
                counter.labels(feature=name).inc(count)


METRICS = ServiceMetrics()
