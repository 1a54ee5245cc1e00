"""Each feature view's freshness against its service level, from the materialization state.

A view's *age* is how old its newest row in the online store is ("now" minus the
row's event time). What age is acceptable depends on how often the view gets a
new row, which its ``freshness`` tag says (in the dataset's definitions):

- ``hourly`` / ``daily``: a snapshot (or observation) every hour / every day, so
  the newest row may be up to that period old, plus one scheduler period (the
  step that brings the next row may be that far away);
- ``per landing`` (any other tag): a row whenever an event happens, which can be
  hours apart at night; the view is on time when the step ran within one
  scheduler period (its *lag*: "now" minus what it is materialized through);
- ``static``: written once; no freshness objective.

A view *breaks its SLO* when it is older than that (and, for every view but a
static one, when its lag exceeds one scheduler period). It is *expired* when its
age exceeds its TTL: the service then masks its values as stale. ``status``
shows both, and ``status --check`` fails on any expired view.

Only the state file is read (no Feast import), so the service can export these
figures as gauges cheaply.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from feature_repo.state_files import MaterializationState

PERIODIC = {"hourly": timedelta(hours=1), "daily": timedelta(days=1)}
STATIC = "static"


@dataclass(frozen=True)
class ViewFreshness:
    view: str
    freshness: str | None
    age_seconds: float | None
    lag_seconds: float | None
    objective_seconds: float | None
    ttl_seconds: float | None
    breaks_slo: bool
    expired: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def assess_view(
    name: str, entry: dict[str, Any], now: datetime, period: timedelta
) -> ViewFreshness:
    """One view's figures from its state entry (see ``MaterializationState``)."""
    freshness = entry.get("freshness")
    ttl = entry.get("ttl_seconds") or None  # 0: never expires
    newest, watermark = entry.get("newest_event"), entry.get("watermark")
    age = (now - datetime.fromisoformat(newest)).total_seconds() if newest else None
    lag = (now - datetime.fromisoformat(watermark)).total_seconds() if watermark else None
    objective: float | None = None
    breaks = False
    if freshness != STATIC:
        if freshness in PERIODIC:
            objective = (PERIODIC[freshness] + period).total_seconds()
            breaks = age is None or age > objective
        breaks = breaks or lag is None or lag > period.total_seconds()
    expired = ttl is not None and (age is None or age > ttl)
    return ViewFreshness(name, freshness, age, lag, objective, ttl, breaks, expired)


def assess(state: MaterializationState, now: datetime, period: timedelta) -> list[ViewFreshness]:
    return [assess_view(name, entry, now, period) for name, entry in sorted(state.views().items())]


def schedule_period(state: MaterializationState, default: timedelta) -> timedelta:
    """The running scheduler's period when it recorded one, else ``default``."""
    seconds = state.schedule().get("period_seconds")
    return timedelta(seconds=seconds) if seconds else default
