"""Replaying scheduled flights against a running service, on the simulated clock.

For each day: move the clock to the day's start, materialize through it (as
the scheduler would), then send the day's flights, in requests of ``batch``
flights, and record each request's latency. Used by ``make run`` and by the
monitoring replay.
"""

from __future__ import annotations

import importlib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from feature_repo.clock import Clock
from feature_repo.settings import Settings


@dataclass
class ReplayStats:
    requests: int = 0
    flights: int = 0
    errors: int = 0
    late: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    def summary(self) -> str:
        mean = statistics.fmean(self.latencies_ms) if self.latencies_ms else float("nan")
        rate = self.requests / self.seconds if self.seconds else float("nan")
        return (
            f"{self.flights:,} flights in {self.requests:,} requests, {self.errors} errors, "
            f"{self.late / max(1, self.flights):.1%} predicted late; latency p50 "
            f"{self.percentile(50):.1f} ms, p99 {self.percentile(99):.1f} ms, mean {mean:.1f} ms; "
            f"{rate:.0f} requests/s"
        )


def send_flights(
    client: httpx.Client,
    flights: Sequence[dict[str, Any]],
    batch: int,
    stats: ReplayStats,
    headers: dict[str, str] | None = None,
) -> None:
    began = time.perf_counter()
    for i in range(0, len(flights), batch):
        chunk = list(flights[i : i + batch])
        sent = time.perf_counter()
        response = client.post("/predict", json={"flights": chunk}, headers=headers or {})
        stats.latencies_ms.append((time.perf_counter() - sent) * 1000)
        stats.requests += 1
        if response.status_code != 200:
            stats.errors += 1
            continue
        predictions = response.json()["predictions"]
        stats.flights += len(predictions)
        stats.late += sum(p["late"] for p in predictions)
    stats.seconds += time.perf_counter() - began


def replay_days(
    settings: Settings,
    url: str,
    first_day: date,
    days: int,
    batch: int = 1,
    on_day: Callable[[date, ReplayStats], None] | None = None,
    headers: dict[str, str] | None = None,
) -> ReplayStats:
    from feature_repo.materialize import Materializer

    requests = importlib.import_module(f"{settings.dataset_module}.requests")
    clock = Clock(settings)
    materializer = Materializer(settings)
    total = ReplayStats()
    with httpx.Client(base_url=url, timeout=30) as client:
        for offset in range(days):
            day = first_day + timedelta(days=offset)
            now = datetime(day.year, day.month, day.day, tzinfo=UTC)
            materializer.run(now=now, wait_seconds=60)
            clock.set(now)
            stats = ReplayStats()
            send_flights(client, requests.scheduled_flights(day), batch, stats, headers)
            if on_day:
                on_day(day, stats)
            total.requests += stats.requests
            total.flights += stats.flights
            total.errors += stats.errors
            total.late += stats.late
            total.latencies_ms += stats.latencies_ms
            total.seconds += stats.seconds
    return total
