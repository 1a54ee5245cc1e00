"""Replaying scheduled flights against a running service, on the simulated clock.

Each flight is predicted ``Settings.prediction_lead`` before it departs, as in
training. The clock advances in ticks (an hour by default); at each tick the
pipeline's step runs through it (ingest what is knowable by the tick, build the
features, materialize; the same ``Materializer.run`` the scheduler calls), and
the flights whose prediction time falls in ``[tick, tick + step)`` are sent, in
requests of ``batch`` flights, so each is served with features at most one
step older than the point-in-time features it was trained on. (Ticking once a
day served every flight with the features of midnight: aircraft idle since
yesterday, the night's weather, an empty departure board, and a model that
called nearly every flight late.)

Nothing reaches the service early: the raw layer holds only what was knowable
by the tick. Used by ``make run`` (``python -m serving demo``).
"""

from __future__ import annotations

import importlib
import logging
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from feature_repo.clock import Clock
from feature_repo.settings import Settings

log = logging.getLogger(__name__)


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

    def to_dict(self) -> dict[str, float | int]:
        return {
            "flights": self.flights,
            "requests": self.requests,
            "errors": self.errors,
            "late_share": round(self.late / max(1, self.flights), 4),
            "latency_ms_p50": round(self.percentile(50), 2),
            "latency_ms_p99": round(self.percentile(99), 2),
            "requests_per_second": round(self.requests / self.seconds, 1) if self.seconds else 0,
        }

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


def add_stats(total: ReplayStats, part: ReplayStats) -> None:
    total.requests += part.requests
    total.flights += part.flights
    total.errors += part.errors
    total.late += part.late
    total.latencies_ms += part.latencies_ms
    total.seconds += part.seconds


def floor_to(instant: datetime, step: timedelta) -> datetime:
    """The start of the ``step``-long tick (counted from the epoch, UTC) holding ``instant``."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + (instant - epoch) // step * step


def prediction_ticks(
    flights: Sequence[dict[str, Any]], event_time_field: str, lead: timedelta, step: timedelta
) -> dict[datetime, list[dict[str, Any]]]:
    """Flights by the tick at which each is predicted: the last one at or before
    ``event time - lead``. Ticks in time order, flights in schedule order within one."""
    ticks: dict[datetime, list[dict[str, Any]]] = {}
    for flight in flights:
        event = flight[event_time_field]
        if isinstance(event, str):
            event = datetime.fromisoformat(event)
        ticks.setdefault(floor_to(event - lead, step), []).append(flight)
    return dict(sorted(ticks.items()))


def _warn_if_already_ahead(materializer: Any, first_tick: datetime | None) -> None:
    """Materialization cannot be undone: flights predicted before the online store's
    newest watermark would be served features from after their prediction time."""
    furthest = materializer.online_watermark()
    ahead = furthest[1] if furthest else None
    if first_tick is not None and ahead is not None and ahead > first_tick:
        log.warning(
            "online store is ahead of the replay",
            extra={"materialized_through": ahead.isoformat(), "first_tick": first_tick.isoformat()},
        )


def replay_days(
    settings: Settings,
    url: str,
    first_day: date,
    days: int,
    batch: int = 1,
    on_day: Callable[[date, ReplayStats], None] | None = None,
    headers: dict[str, str] | None = None,
    step: timedelta = timedelta(hours=1),
    on_tick: Callable[[int, int], None] | None = None,
) -> ReplayStats:
    """Send the flights scheduled on ``days`` days from ``first_day``; ``on_day`` gets
    each departure day's figures once all of its flights have been sent, ``on_tick``
    the count of ticks done and in all after each tick.

    The ingest and materialization each tick runs log at DEBUG: the JSON log file
    has them, the console only the replay's progress.
    """
    from feature_repo.materialize import Materializer
    from feature_repo.state_files import MaterializationState
    from feature_repo.structured_logging import info_as_debug

    if step <= timedelta(0):
        raise ValueError(f"the replay's tick must be positive, got {step}")
    requests = importlib.import_module(f"{settings.dataset_module}.requests")
    departure_days = [first_day + timedelta(days=offset) for offset in range(days)]
    schedule = {day: requests.scheduled_flights(day) for day in departure_days}
    by_tick: dict[datetime, list[tuple[date, dict[str, Any]]]] = {}
    for day, flights in schedule.items():
        for tick, due in prediction_ticks(
            flights, requests.EVENT_TIME_FIELD, settings.prediction_lead, step
        ).items():
            by_tick.setdefault(tick, []).extend((day, flight) for flight in due)
    last_tick = {
        day: max(t for t, due in by_tick.items() if any(d == day for d, _ in due))
        for day in departure_days
        if schedule[day]
    }
    clock = Clock(settings)
    materializer = Materializer(settings)
    MaterializationState(settings).record_schedule(
        f"serving replay every {step}", None, os.getpid(), step
    )
    _warn_if_already_ahead(materializer, min(by_tick, default=None))
    per_day = {day: ReplayStats() for day in departure_days}
    total = ReplayStats()
    routine = info_as_debug(
        "feature_repo.materialize",
        "feature_repo.pipeline",
        "feature_repo.feature_build",
        "feature_repo.raw_layer",
    )
    with httpx.Client(base_url=url, timeout=30) as client, routine:
        for done, tick in enumerate(sorted(by_tick), start=1):
            # Ticks behind the store (warned about above) write nothing; the flights
            # are still sent.
            materializer.run(now=tick, wait_seconds=60, behind_ok=True)
            clock.set(tick)
            sending = by_tick[tick]
            for day in dict.fromkeys(d for d, _ in sending):
                stats = ReplayStats()
                send_flights(client, [f for d, f in sending if d == day], batch, stats, headers)
                add_stats(per_day[day], stats)
                add_stats(total, stats)
                if on_day and last_tick[day] == tick:
                    on_day(day, per_day[day])
            if on_tick:
                on_tick(done, len(by_tick))
    return total
