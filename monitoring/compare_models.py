"""Champion and challenger on the same live flights: ``python -m monitoring compare-models``.

While a challenger runs in shadow or canary, the service logs every model's
probability for every flight, with the model's tag and role
(``serving.served_data``). This module keeps, per flight, the latest
probability of the challenger and of the model that was champion when the
flight was served, joins them with the outcomes knowable at the clock's "now"
(``monitoring.performance.read_outcomes``: nothing from the future on a
simulated clock), and compares them overall, per slice (carrier, origin) and
per day: ROC-AUC, log loss and Brier per model, and the paired difference
(challenger minus champion) with a 95% CI (``monitoring.paired``).

ROC-AUC's CI takes the day as its unit by default (``ci_unit="day"``): flights
are grouped in consecutive 24-hour blocks from the window's start and
``monitoring.paired.clustered_auc`` resamples the blocks, because the noise of
live flights is mostly between days. ``ci_unit="flight"`` is DeLong's interval,
which treats flights as independent and is two to four times too narrow on
the bundled year. The per-day rows use DeLong's within their day.

The verdict follows ROC-AUC: *better* or *worse* when its CI excludes zero on
at least ``min_labels`` labelled flights, else *not yet known*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_repo.raw_layer import RawLayer, partition_day
from feature_repo.settings import Settings
from model_registry.rollout import ROLE_CHAMPION
from monitoring.paired import METRICS, PairedMetric, compare_pair

BETTER, WORSE, UNKNOWN = "better", "worse", "not yet known"
SLICE_KINDS = ("carrier", "origin")
DEFAULT_LOOKBACK = timedelta(days=30)
CI_UNITS = ("day", "flight")
AUC_METHODS = {
    "day": "delete-one-day jackknife of the paired difference (24-hour blocks from the "
    "window's start), never narrower than DeLong's, Student's t on days - 1",
    "flight": "DeLong paired variance (flights independent)",
}


class ComparisonInputError(ValueError):
    """Nothing to compare (no predictions by the challenger, none paired); names what is missing."""


@dataclass(frozen=True)
class SliceComparison:
    slice: str  # "all", "carrier=UA", "origin=EWR", or a day
    flights: int  # paired flights
    labelled: int
    positives: int
    metrics: dict[str, PairedMetric]
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "slice": self.slice,
            "flights": self.flights,
            "labelled": self.labelled,
            "positives": self.positives,
            "verdict": self.verdict,
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
        }


@dataclass(frozen=True)
class Comparison:
    challenger: str
    champions: tuple[str, ...]
    window: tuple[datetime, datetime]
    now: datetime
    min_labels: int
    resamples: int
    seed: int
    ci_unit: str
    overall: SliceComparison
    slices: tuple[SliceComparison, ...]
    daily: tuple[SliceComparison, ...]
    roles: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        return self.overall.verdict

    @property
    def failed(self) -> bool:
        """The policy breach ``monitoring`` exits 3 on: the challenger is worse."""
        return self.verdict == WORSE

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "compare-models",
            "challenger": self.challenger,
            "champions": list(self.champions),
            "verdict": self.verdict,
            "failed": self.failed,
            "window": {"start": self.window[0].isoformat(), "end": self.window[1].isoformat()},
            "now": self.now.isoformat(),
            "policy": {
                "min_labels": self.min_labels,
                "metric": "roc_auc",
                "ci": 0.95,
                "ci_unit": self.ci_unit,
            },
            "method": {
                "roc_auc": AUC_METHODS[self.ci_unit],
                "log_loss": f"paired bootstrap over flights, {self.resamples} resamples, "
                f"seed {self.seed}",
                "brier": f"paired bootstrap over flights, {self.resamples} resamples, "
                f"seed {self.seed}",
            },
            "roles": self.roles,
            "notes": list(self.notes),
            "overall": self.overall.to_dict(),
            "slices": [s.to_dict() for s in self.slices],
            "daily": [d.to_dict() for d in self.daily],
        }


def verdict_of(metrics: dict[str, PairedMetric], labelled: int, min_labels: int) -> str:
    if labelled < min_labels:
        return UNKNOWN
    sign = metrics["roc_auc"].gain_sign
    return BETTER if sign > 0 else WORSE if sign < 0 else UNKNOWN


def compare_slice(
    name: str,
    rows: pd.DataFrame,
    min_labels: int,
    resamples: int,
    seed: int,
    by_day: bool = False,
) -> SliceComparison:
    """``rows``: paired flights with ``champion``, ``challenger`` and ``label`` (NaN = unknown);
    ``by_day``: ROC-AUC's CI over the rows' ``block`` (their day), else over flights."""
    known = rows[rows["label"].notna()]
    y = known["label"].to_numpy(dtype=np.int64)
    metrics = compare_pair(
        y,
        known["champion"].to_numpy(dtype=np.float64),
        known["challenger"].to_numpy(dtype=np.float64),
        resamples,
        seed,
        clusters=known["block"].to_numpy() if by_day else None,
    )
    return SliceComparison(
        slice=name,
        flights=len(rows),
        labelled=len(known),
        positives=int(y.sum()),
        metrics=metrics,
        verdict=verdict_of(metrics, len(known), min_labels),
    )


def pair_predictions(predictions: pd.DataFrame, challenger: str) -> pd.DataFrame:
    """One row per flight both the challenger and a champion scored: their latest probabilities.

    Columns: ``flight_id``, ``prediction_time`` (the champion's), ``champion_tag``,
    ``champion``, ``challenger``.
    """
    frame = predictions.sort_values("prediction_time", kind="stable")
    ours = frame[frame["model_tag"] == challenger].drop_duplicates("flight_id", keep="last")
    champion_rows = frame[(frame["role"] == ROLE_CHAMPION) & (frame["model_tag"] != challenger)]
    theirs = champion_rows.drop_duplicates("flight_id", keep="last")
    paired = theirs[["flight_id", "prediction_time", "model_tag", "probability"]].merge(
        ours[["flight_id", "probability"]], on="flight_id", suffixes=("_champion", "_challenger")
    )
    return paired.rename(
        columns={
            "model_tag": "champion_tag",
            "probability_champion": "champion",
            "probability_challenger": "challenger",
        }
    )


def read_flight_slices(raw_dir: Path, first: date, last: date) -> pd.DataFrame:
    """``flight_id``, ``carrier``, ``origin`` of flights departing ``first`` to ``last``."""
    files = []
    for path in RawLayer(raw_dir).published_files("departures"):
        try:
            day = partition_day(path)
        except ValueError:
            day = None
        if day is None or first <= day <= last:
            files.append(path)
    columns = ["flight_id", *SLICE_KINDS]
    if not files:
        return pd.DataFrame({c: pd.Series([], dtype="object") for c in columns})
    table = pa.concat_tables([pq.read_table(f, columns=columns) for f in files])
    return table.to_pandas().drop_duplicates("flight_id", keep="last")


def compare(
    paired: pd.DataFrame,
    challenger: str,
    window: tuple[datetime, datetime],
    now: datetime,
    *,
    min_labels: int = 200,
    resamples: int = 1000,
    seed: int = 0,
    ci_unit: str = "day",
    roles: dict[str, int] | None = None,
    notes: tuple[str, ...] = (),
) -> Comparison:
    """``paired`` (:func:`pair_predictions`) with ``label`` and the slice columns joined."""
    if ci_unit not in CI_UNITS:
        raise ValueError(f"ci_unit must be one of {', '.join(CI_UNITS)}, not {ci_unit!r}")
    times = paired["prediction_time"].dt.tz_convert(UTC)
    paired = paired.assign(block=(times - pd.Timestamp(window[0])) // pd.Timedelta(days=1))

    def judge(name: str, rows: pd.DataFrame, by_day: bool = ci_unit == "day") -> SliceComparison:
        return compare_slice(name, rows, min_labels, resamples, seed, by_day)

    slices = []
    for kind in SLICE_KINDS:
        if kind not in paired:
            continue
        # Flights without a departure record (cancelled: never labelled) count overall only.
        for key, rows in paired.dropna(subset=[kind]).groupby(kind, sort=True):
            slices.append(judge(f"{kind}={key}", rows))
    days = times.dt.strftime("%Y-%m-%d")
    daily = [judge(str(day), rows, False) for day, rows in paired.groupby(days, sort=True)]
    return Comparison(
        challenger=challenger,
        champions=tuple(sorted(paired["champion_tag"].astype(str).unique())),
        window=window,
        now=now,
        min_labels=min_labels,
        resamples=resamples,
        seed=seed,
        ci_unit=ci_unit,
        overall=judge("all", paired),
        slices=tuple(slices),
        daily=tuple(daily),
        roles=roles or {},
        notes=notes,
    )


def default_window(settings: Settings) -> tuple[datetime, datetime]:
    """The last 30 days up to the clock's now."""
    from feature_repo.clock import Clock

    now = Clock(settings).now().instant
    return now - DEFAULT_LOOKBACK, now


def compare_models(
    settings: Settings,
    challenger: str,
    window: tuple[datetime, datetime],
    *,
    min_labels: int = 200,
    resamples: int = 1000,
    seed: int = 0,
    ci_unit: str = "day",
    predictions_dir: Path | None = None,
) -> Comparison:
    """Read the logs and outcomes for ``window`` and compare ``challenger`` with the champion."""
    from feature_repo.clock import Clock
    from monitoring import layout
    from monitoring.performance import OutcomeSpec, read_outcomes
    from monitoring.predictions import read_predictions
    from monitoring.registry import RegistryLookupError, model_info

    try:
        challenger = model_info(settings, challenger).tag
    except RegistryLookupError as err:
        raise ComparisonInputError(str(err)) from None
    start, end = window
    now = Clock(settings).now().instant
    source = predictions_dir or layout.predictions_dir(settings)
    predictions = read_predictions(source, start, end)
    span = f"{start.isoformat()} .. {end.isoformat()}"
    mine = predictions[predictions["model_tag"] == challenger]
    if mine.empty:
        raise ComparisonInputError(
            f"{source}: no predictions by {challenger} in {span}; put it in shadow or canary "
            f"first (`python -m training models rollout {challenger} --shadow`)"
        )
    paired = pair_predictions(predictions, challenger)
    if paired.empty:
        raise ComparisonInputError(
            f"{source}: no flight in {span} was scored by both {challenger} and a champion"
        )
    outcomes = read_outcomes(settings.raw_dir, now, OutcomeSpec(), since=start.date())
    paired = paired.merge(outcomes[["flight_id", "label"]], on="flight_id", how="left")
    slices = read_flight_slices(
        settings.raw_dir, start.date() - timedelta(days=1), end.date() + timedelta(days=1)
    )
    paired = paired.merge(slices, on="flight_id", how="left")
    notes = []
    if end > now:
        notes.append(f"the window ends after now ({now.isoformat()}): later outcomes are unknown")
    roles = {str(k): int(v) for k, v in mine["role"].value_counts().items()}
    return compare(paired, challenger, (start, end), now, min_labels=min_labels,
                   resamples=resamples, seed=seed, ci_unit=ci_unit, roles=roles,
                   notes=tuple(notes))  # fmt: skip


def comparison_dir(settings: Settings) -> Path:
    return settings.monitoring_dir / "compare_models"


def write_comparison(
    settings: Settings, result: Comparison, out: Path | None = None
) -> tuple[Path, Path]:
    """``compare_models.json`` and ``compare_models.html`` (with the daily plot); both paths."""
    from feature_repo.atomic_io import write_json, write_text
    from monitoring.compare_models_report import render_html

    folder = out or comparison_dir(settings)
    json_path, html_path = folder / "compare_models.json", folder / "compare_models.html"
    write_json(result.to_dict(), json_path)
    write_text(render_html(result), html_path)
    return json_path, html_path


__all__ = ["METRICS", "Comparison", "compare", "compare_models", "write_comparison"]
