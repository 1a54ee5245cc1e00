"""The system's one notion of "now".

The bundled data is from 2013, so "now" is either the wall clock or a
simulated time that a replay advances through the dataset. Ingest,
materialization and serving all ask this module, in this order:

1. ``FEASTLINE_NOW`` (ISO 8601): a fixed instant, for one-off runs and tests;
2. ``<data>/state/clock.json``: the simulated time a replay last moved to;
3. the wall clock.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from feature_repo.atomic_io import write_json
from feature_repo.settings import Settings

NOW_ENV = "FEASTLINE_NOW"


def parse_instant(text: str) -> datetime:
    """An ISO date or datetime; naive values are taken as UTC."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_duration(text: str) -> timedelta:
    """``15m``, ``1h``, ``1d``, ``30s`` -> timedelta."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit() or int(text[:-1]) <= 0:
        raise ValueError(f"expected a duration like 15m, 1h or 1d, got {text!r}")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


@dataclass(frozen=True)
class Now:
    instant: datetime
    source: str  # "env", "simulated" or "wall"

    @property
    def simulated(self) -> bool:
        return self.source != "wall"


class Clock:
    def __init__(self, settings: Settings) -> None:
        self.path: Path = settings.state_dir / "clock.json"

    def now(self) -> Now:
        if fixed := os.environ.get(NOW_ENV):
            return Now(parse_instant(fixed), "env")
        if self.path.exists():
            state = json.loads(self.path.read_text())
            return Now(parse_instant(state["now"]), "simulated")
        return Now(datetime.now(UTC), "wall")

    def set(self, instant: datetime) -> None:
        """Move the simulated clock (replay). Every process reading the clock follows."""
        write_json({"now": instant.astimezone(UTC).isoformat()}, self.path)

    def reset(self) -> None:
        """Back to the wall clock."""
        self.path.unlink(missing_ok=True)
