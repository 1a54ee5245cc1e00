"""Drift verdicts measured: false alarms on history, seasonal shift, injected faults.

    .venv/bin/python bench/drift_acceptance.py [--data-dir DIR] [--every 1]

Needs a model trained on January–April, validated on May (so its reference
profile, calibration and permutation importance cover January–May), and the
raw layer through July: ``bench/drift_data.py`` prepares both in its own data
directory (``data/bench-drift`` by default, never ``./data``) on first use.

Every target is profiled and compared exactly as the monitor does it in
production (``profile_frame`` with the window, then ``drift.compare`` with the
reference's calibration and the default policy):

1. False alarms: every 1-, 3- and 7-day window from February through May
   against the January–May reference. The acceptance bound is 5% failing.
2. Seasonal shift: each July week.
3. Injected faults, from noon UTC of the 4th day of a 7-day stretch (June 1–7,
   after the reference, and May 20–26, inside it): pressure at EWR replaced by
   noise (uniform 900–1100 hPa, a sensor reporting garbage over its range), and
   a feature going all-null. The monitor checks at the end of each day the
   1-, 3- and 7-day windows that end then; the delay is from the fault's start
   to the first failing check. The same stretch without the fault is the control.
4. Label shift: the late flights of a week oversampled to 1.5, 2 and 3 times
   their share; it should show as prediction drift.

Not run by the tests: it takes a few minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drift_data import Scored, prepare

from monitoring.calibration import Calibration
from monitoring.drift import DriftResult, compare
from monitoring.profiles import Profile, profile_frame

console = Console(width=max(Console().width, 120))
LENGTHS = (1, 3, 7)
FAULT_AIRPORT = "EWR"
PRESSURE = "weather_hourly__pressure_mb"
GOES_NULL = "origin_congestion_3h__mean_dep_delay"


class Monitor:
    """Profiles rows of a window and compares them as ``python -m monitoring compare`` would."""

    def __init__(self, scored: Scored, reference: Profile, calibration: Calibration) -> None:
        self.scored = scored
        self.reference = reference
        self.calibration = calibration

    def check(self, rows: pd.DataFrame, start: date, days: int) -> DriftResult:
        begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
        window = (begin, begin + timedelta(days=days))
        target = profile_frame(rows[self.scored.columns], window=window)
        return compare(self.reference, target, calibration=self.calibration)

    def window(self, start: date, days: int, frame: pd.DataFrame | None = None) -> DriftResult:
        frame = self.scored.frame if frame is None else frame
        day = frame["_day"]
        rows = frame[(day >= start) & (day < start + timedelta(days=days))]
        return self.check(rows, start, days)


def _short(reason: str) -> str:
    return reason.split(" (")[0].split(":")[0]


def false_alarms(monitor: Monitor, every: int) -> Table:
    table = Table(title="False alarms: windows Feb 1 – May 31 vs the January–May reference")
    for name in ("window", "windows", "failed", "share", "reasons (count)"):
        table.add_column(name, justify="left" if name.startswith("re") else "right")
    for length in LENGTHS:
        first, last = date(2013, 2, 1), date(2013, 5, 31) - timedelta(days=length - 1)
        starts = [first + timedelta(days=i) for i in range(0, (last - first).days + 1, every)]
        failed: list[tuple[date, list[str]]] = []
        for start in starts:
            result = monitor.window(start, length)
            if result.failed:
                failed.append((start, result.reasons))
        reasons = Counter(_short(r) for _, rs in failed for r in rs)
        table.add_row(
            f"{length}-day",
            str(len(starts)),
            str(len(failed)),
            f"{len(failed) / len(starts):.1%}",
            "; ".join(f"{r} ({n})" for r, n in reasons.most_common())
            + (f" [dim]first: {', '.join(str(s) for s, _ in failed[:4])}[/dim]" if failed else ""),
        )
    return table


def seasonal(monitor: Monitor) -> Table:
    table = Table(title="Seasonal shift: July weeks vs the January–May reference")
    for name in ("week", "verdict", "drifted features", "prediction", "reasons"):
        table.add_column(name)
    for week in range(4):
        start = date(2013, 7, 1) + timedelta(days=7 * week)
        result = monitor.window(start, 7)
        prediction = result.prediction
        table.add_row(
            f"{start} +7d",
            "FAIL" if result.failed else "pass",
            f"{len(result.drifted_features)} of {len(result.features)}",
            "-"
            if prediction is None
            else f"PSI {prediction.psi:.3f} {'DRIFT' if prediction.drifted else 'ok'}",
            "; ".join(result.reasons),
        )
    return table


Fault = Callable[[pd.DataFrame, pd.Series, np.random.Generator], pd.DataFrame]


def pressure_noise(frame: pd.DataFrame, hit: pd.Series, rng: np.random.Generator) -> pd.DataFrame:
    rows = hit & (frame["origin"] == FAULT_AIRPORT)
    out = frame.copy()
    out.loc[rows, PRESSURE] = rng.uniform(900.0, 1100.0, int(rows.sum()))
    return out


def goes_null(frame: pd.DataFrame, hit: pd.Series, rng: np.random.Generator) -> pd.DataFrame:
    out = frame.copy()
    out.loc[hit, GOES_NULL] = np.nan
    return out


def first_failure(
    monitor: Monitor, frame: pd.DataFrame, first: date, days: int
) -> tuple[datetime | None, str]:
    """Daily checks (at the end of each day, every window length ending then)."""
    for offset in range(days):
        end = first + timedelta(days=offset + 1)
        for length in LENGTHS:
            start = end - timedelta(days=length)
            if start < first - timedelta(days=7):
                continue
            result = monitor.window(start, length, frame)
            if result.failed:
                at = datetime(end.year, end.month, end.day, tzinfo=UTC)
                return at, f"{length}-day window: {'; '.join(result.reasons)}"
    return None, ""


def faults(monitor: Monitor) -> Table:
    table = Table(
        title="Injected faults from noon UTC of day 4 (daily checks of 1-, 3-, 7-day windows)"
    )
    for name in ("stretch", "fault", "first failing check", "delay", "why"):
        table.add_column(name)
    frame = monitor.scored.frame
    rng = np.random.default_rng(2013)
    for first in (date(2013, 6, 1), date(2013, 5, 20)):
        onset = datetime(first.year, first.month, first.day, 12, tzinfo=UTC) + timedelta(days=3)
        hit = frame["_time"] >= pd.Timestamp(onset)
        cases: list[tuple[str, pd.DataFrame]] = [
            ("none (control)", frame),
            (f"{PRESSURE} at {FAULT_AIRPORT} -> noise", pressure_noise(frame, hit, rng)),
            (f"{GOES_NULL} -> all null", goes_null(frame, hit, rng)),
        ]
        for name, faulty in cases:
            # Checks start the day after the stretch's first 7 days of history.
            at, why = first_failure(monitor, faulty, first, 7)
            delay = "-" if at is None else f"{(at - onset).total_seconds() / 3600:+.0f} h"
            table.add_row(f"{first} +7d", name, str(at or "none"), delay, why)
    return table


def label_shift(monitor: Monitor) -> Table:
    table = Table(title="Label shift: late flights of a week oversampled (P(x | late) unchanged)")
    for name in ("week", "late share", "prediction PSI", "prediction verdict", "policy"):
        table.add_column(name)
    frame = monitor.scored.frame
    for start in (date(2013, 5, 13), date(2013, 6, 10)):
        rows = frame[(frame["_day"] >= start) & (frame["_day"] < start + timedelta(days=7))]
        late, on_time = rows[rows["label"] == 1], rows[rows["label"] == 0]
        for factor in (1.0, 1.5, 2.0, 3.0):
            # Same number of rows, ``factor`` times the late share: each class resampled
            # from itself, so only the label's share moves.
            n_late = round(min(0.95, factor * len(late) / len(rows)) * len(rows))
            shifted = pd.concat([
                late.sample(n=n_late, replace=n_late > len(late), random_state=1),
                on_time.sample(n=len(rows) - n_late, replace=False, random_state=2),
            ]) if factor != 1.0 else rows  # fmt: skip
            result = monitor.check(shifted, start, 7)
            p = result.prediction
            table.add_row(
                f"{start} +7d x{factor:g}",
                f"{shifted['label'].mean():.1%}",
                "-" if p is None else f"{p.psi:.3f}",
                "-" if p is None else ("DRIFT: " + ", ".join(p.criteria) if p.drifted else "ok"),
                "FAIL" if result.failed else "pass",
            )
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--every", type=int, default=1, help="days between false-alarm windows")
    args = parser.parse_args()
    started = time.perf_counter()
    scored, reference, calibration = prepare(args.data_dir, console)
    monitor = Monitor(scored, reference, calibration)
    console.print(seasonal(monitor))
    console.print(label_shift(monitor))
    console.print(faults(monitor))
    console.print(false_alarms(monitor, args.every))
    console.print(f"[dim]{time.perf_counter() - started:.0f} s[/dim]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
