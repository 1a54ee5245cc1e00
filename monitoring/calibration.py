"""An empirical null for drift: what windows of history score against their own reference.

Data that arrives in time windows differs from its reference by nature: three
days of weather are not five months of weather, and the 7- and 28-day
snapshots move day by day. So no single threshold fits every column. The
calibration slides windows of each monitored length (1, 3 and 7 days by
default) one day at a time over the reference period, scores each window
against the reference exactly as ``compare`` scores a target
(``drift.score_histograms``' arithmetic on the same exact histograms), and keeps, per
column and length, the sorted scores of every statistic. ``compare`` then
judges a column against the quantile of its own null.

It also finds columns that are not comparable by construction: a column with
one value per day (the month, the weekday) while the reference has many.

The result is a JSON file beside the reference profile
(``<reference>.null.json``); training writes it with the reference, and
``python -m monitoring calibrate`` (re)writes it from any history with the
reference's columns.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feature_repo.atomic_io import write_json
from monitoring import histograms
from monitoring.drift import STATISTICS, DriftPolicy, HistogramScorer, Scores
from monitoring.histograms import Histogram
from monitoring.profiles import Profile, grouped_histograms, read_profile

log = logging.getLogger(__name__)

DEFAULT_LENGTHS = (1, 3, 7)
FORMAT_VERSION = 1
# A column is calendar-like when, on the median day, this share of its values is one
# value, while no value holds more than CALENDAR_REFERENCE_SHARE of the reference.
CALENDAR_DAY_SHARE = 0.8
CALENDAR_REFERENCE_SHARE = 0.5

DayHistograms = Mapping[date, Mapping[str, Histogram]]


class CalibrationError(ValueError):
    """No usable history, or a calibration that does not belong to the reference."""


@dataclass(frozen=True)
class Calibration:
    reference_rows: int
    reference_window: tuple[str | None, str | None]
    lengths: tuple[int, ...]
    windows: dict[int, int]  # length -> windows scored
    nulls: dict[str, dict[int, dict[str, list[float]]]]  # column -> length -> statistic -> sorted
    not_comparable: dict[str, str] = field(default_factory=dict)
    history: tuple[str | None, str | None] = (None, None)  # first and last day used
    seconds: float = 0.0
    created_at: str = ""

    def nearest_length(self, days: int | None) -> int:
        """The calibrated length closest to ``days`` (on a log scale); 1-day when unknown."""
        if days is None:
            return min(self.lengths)
        return min(self.lengths, key=lambda n: (abs(math.log(n / days)), n))

    def null(self, column: str, length: int | None) -> dict[str, list[float]] | None:
        per_length = self.nulls.get(column)
        if not per_length or length is None:
            return None
        return per_length.get(length)

    def describe_reference(self) -> str:
        start, end = self.history
        return f"history {start} .. {end}" if start and end else "the reference period"

    def matches(self, reference: Profile) -> bool:
        start, end = reference.window
        window = (start.isoformat() if start else None, end.isoformat() if end else None)
        return reference.rows == self.reference_rows and window == self.reference_window

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "reference_rows": self.reference_rows,
            "reference_window": list(self.reference_window),
            "lengths": list(self.lengths),
            "windows": {str(k): v for k, v in self.windows.items()},
            "history": list(self.history),
            "not_comparable": self.not_comparable,
            "seconds": round(self.seconds, 3),
            "created_at": self.created_at,
            "nulls": {
                column: {str(n): stats for n, stats in per_length.items()}
                for column, per_length in self.nulls.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Calibration:
        if data.get("format") != FORMAT_VERSION:
            raise CalibrationError(f"unknown calibration format {data.get('format')!r}")
        return cls(
            reference_rows=int(data["reference_rows"]),
            reference_window=tuple(data["reference_window"]),
            lengths=tuple(int(n) for n in data["lengths"]),
            windows={int(k): int(v) for k, v in data["windows"].items()},
            nulls={
                column: {int(n): stats for n, stats in per_length.items()}
                for column, per_length in data["nulls"].items()
            },
            not_comparable=dict(data.get("not_comparable") or {}),
            history=tuple(data.get("history") or (None, None)),
            seconds=float(data.get("seconds") or 0.0),
            created_at=str(data.get("created_at") or ""),
        )


def null_path(reference_path: Path) -> Path:
    """Where a reference profile's calibration lives: beside it, ``<stem>.null.json``."""
    reference_path = Path(reference_path)
    return reference_path.with_name(f"{reference_path.stem}.null.json")


def write_calibration(calibration: Calibration, path: Path) -> Path:
    write_json(calibration.to_json(), Path(path))
    return Path(path)


def read_calibration(path: Path) -> Calibration:
    import json

    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CalibrationError(f"{path}: calibration file not found") from None
    except (OSError, ValueError) as err:
        raise CalibrationError(f"{path}: not a readable calibration ({err})") from None
    try:
        return Calibration.from_json(data)
    except (KeyError, TypeError, ValueError) as err:
        raise CalibrationError(f"{path}: not a calibration ({err})") from None


def daily_histograms(
    frame: pd.DataFrame, time_column: str, columns: Sequence[str]
) -> dict[date, dict[str, Histogram]]:
    """Per UTC day of ``time_column``, the exact histograms a profile of that day carries."""
    if time_column not in frame.columns:
        raise CalibrationError(f"no time column {time_column!r} in the history")
    days = pd.to_datetime(frame[time_column], utc=True).dt.date
    return grouped_histograms(frame[list(columns)], days.to_numpy())


def _dominant_share(histogram: Histogram) -> float | None:
    return max(histogram.counts) / histogram.present if histogram.present else None


def calendar_columns(reference: Mapping[str, Histogram], days: DayHistograms) -> dict[str, str]:
    """Columns that hold one value per day while the reference holds many (month, weekday)."""
    found = {}
    for column, ref in reference.items():
        ref_share = _dominant_share(ref)
        if ref_share is None or ref_share > CALENDAR_REFERENCE_SHARE:
            continue
        shares = sorted(
            s for day in days.values() if column in day
            if (s := _dominant_share(day[column])) is not None
        )  # fmt: skip
        if shares and shares[len(shares) // 2] >= CALENDAR_DAY_SHARE:
            median = shares[len(shares) // 2]
            found[column] = f"calendar field (one value per day: {median:.0%} on the median day)"
    return found


def _significant(value: float | None) -> float:
    return 0.0 if value is None else float(f"{value:.6g}")


def calibrate(
    reference: Profile,
    days: DayHistograms,
    lengths: Sequence[int] = DEFAULT_LENGTHS,
    policy: DriftPolicy | None = None,
) -> Calibration:
    """Score every window of each length (whole days, one day apart) against the reference."""
    started = time.perf_counter()
    policy = policy or DriftPolicy()
    if not reference.has_histograms:
        raise CalibrationError("the reference profile has no exact histograms; re-profile it")
    ref = reference.histograms()
    columns = sorted(set(ref) & {c for day in days.values() for c in day})
    if not columns:
        raise CalibrationError("the history has none of the reference's columns")
    ordered = sorted(days)
    lengths = tuple(sorted({int(n) for n in lengths}))
    if not lengths or lengths[0] < 1:
        raise CalibrationError(f"window lengths must be whole days >= 1, got {lengths}")
    nulls: dict[str, dict[int, dict[str, list[float]]]] = {c: {} for c in columns}
    # One scorer per column: the reference's side is the same for every window.
    scorers = {c: HistogramScorer(ref[c], policy.bins, policy.max_categories) for c in columns}
    counted = _day_counts(scorers, days)
    windows: dict[int, int] = {}
    for length in lengths:
        scores: dict[str, dict[str, list[float]]] = {
            c: {s: [] for s in STATISTICS} for c in columns
        }
        count = 0
        for first in ordered:
            span = [first + timedelta(days=i) for i in range(length)]
            if not all(d in days for d in span):
                continue  # a gap in the history: no window across it
            count += 1
            results: dict[str, Scores] = {}
            for column in columns:
                if (summed := _window_counts(counted[column], span)) is not None:
                    results[column] = scorers[column].score_counts(*summed)
            # The rest (text, a type change, days without values) from merged histograms.
            rest = [c for c in columns if c not in results]
            if rest:
                merged = histograms.merge_sets(
                    {c: days[d][c] for c in rest if c in days[d]} for d in span
                )
                results |= {c: scorers[c].score(merged[c]) for c in rest if c in merged}
            for column in columns:
                if column not in results:
                    continue
                for statistic in STATISTICS:
                    value = results[column].value(statistic)
                    scores[column][statistic].append(_significant(value))
        if count:
            windows[length] = count
            for column in columns:
                nulls[column][length] = {s: sorted(v) for s, v in scores[column].items()}
    if not windows:
        raise CalibrationError(f"the history ({len(ordered)} days) is shorter than any window")
    start, end = reference.window
    return Calibration(
        reference_rows=reference.rows,
        reference_window=(start.isoformat() if start else None, end.isoformat() if end else None),
        lengths=tuple(windows),
        windows=windows,
        nulls=nulls,
        not_comparable=calendar_columns(ref, days),
        history=(ordered[0].isoformat(), ordered[-1].isoformat()),
        seconds=time.perf_counter() - started,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


DayCounts = dict[date, tuple[np.ndarray | None, int]]


def _day_counts(
    scorers: Mapping[str, HistogramScorer], days: DayHistograms
) -> dict[str, DayCounts]:
    """Per column and day, the day's counts on the reference's bins (None when either
    side is not numeric) and its nulls: a window's counts are the sum of its days'."""
    return {
        column: {
            day: (scorer.bin_counts(day_histograms[column]), day_histograms[column].nulls)
            for day, day_histograms in days.items()
            if column in day_histograms
        }
        for column, scorer in scorers.items()
    }


def _window_counts(counted: DayCounts, span: Sequence[date]) -> tuple[np.ndarray, int] | None:
    """The window's summed counts and nulls, when every day has the column with numbers
    (else None: the window is scored from its merged histograms)."""
    parts = [counted.get(day) for day in span]
    if any(part is None or part[0] is None for part in parts):
        return None
    counts = [part[0] for part in parts if part is not None and part[0] is not None]
    return np.sum(counts, axis=0), sum(part[1] for part in parts if part is not None)


def calibrate_frame(
    frame: pd.DataFrame,
    reference_path: Path,
    *,
    time_column: str = "event_timestamp",
    lengths: Sequence[int] = DEFAULT_LENGTHS,
    out: Path | None = None,
    period: tuple[date, date] | None = None,
) -> tuple[Calibration, Path]:
    """Calibrate the reference at ``reference_path`` on ``frame``'s days within
    ``period`` (first and last day; default: the reference's own window) and
    write it beside the reference (or to ``out``)."""
    reference = read_profile(reference_path)
    columns = [c for c in reference.columns if c in frame.columns]
    days = daily_histograms(frame, time_column, columns)
    start, end = reference.window
    if period is None and start is not None and end is not None:
        period = (start.date(), end.date())
    if period is not None:
        first, last = period
        days = {d: h for d, h in days.items() if first <= d <= last}
    calibration = calibrate(reference, days, lengths)
    path = out or null_path(reference_path)
    write_calibration(calibration, path)
    return calibration, path


def calibrate_reference(
    frame: pd.DataFrame, reference_path: Path, *, time_column: str = "event_timestamp"
) -> Path | None:
    """Training's hook: calibrate a new reference on the rows it profiles.

    A history too short for any window (under a day) leaves no calibration:
    ``compare`` then judges by fixed thresholds and says so. Nothing else is
    swallowed.
    """
    try:
        calibration, path = calibrate_frame(frame, reference_path, time_column=time_column)
    except CalibrationError as err:
        log.warning("reference not calibrated", extra={"reference": str(reference_path),
                                                       "reason": str(err)})  # fmt: skip
        return None
    log.info(
        "reference calibrated",
        extra={"path": str(path), "windows": calibration.windows,
               "seconds": round(calibration.seconds, 1)},
    )  # fmt: skip
    return path
