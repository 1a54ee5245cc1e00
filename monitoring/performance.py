"""Delayed-label performance: logged predictions joined with outcomes known since.

A prediction is made two hours before departure; whether the flight arrived
more than 15 minutes late is known only when it lands. This module joins the
prediction log (``monitoring.predictions``) with the raw layer's outcome table
(``arrivals``: ``flight_id``, ``arr_delay``, ``knowable_at``), keeping only the
outcomes knowable at the clock's "now" (``feature_repo.clock``), so a run on
the simulated clock never peeks at the future.

Per window (e.g. per day) and for the whole span it reports ROC-AUC, and
precision and recall at the model's decision threshold, next to the model's
validation metrics from the registry. A window degrades when a metric falls
more than ``margin`` below validation; windows with too few labelled rows are
reported but not judged, because a day's precision swings by several points
on a few hundred flights.

Precision moves with the share of late flights even when the model ranks as
well as ever (13% of September flights arrive late against 22% in May), so the
table shows the observed late share next to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from feature_repo.raw_layer import KNOWABLE_AT, RawLayer, partition_day
from monitoring.intervals import interval_starts

METRICS = ("roc_auc", "precision", "recall")


class PerformanceInputError(ValueError):
    """Nothing to evaluate (no predictions in the window, no threshold); names what is missing."""


@dataclass(frozen=True)
class OutcomeSpec:
    """Where outcomes live in the raw layer and what counts as a positive label."""

    table: str = "arrivals"
    key: str = "flight_id"
    value: str = "arr_delay"
    positive_above: float = 15.0  # late: arr_delay > 15 minutes, as in training

    def describe(self) -> str:
        return f"{self.table}.{self.value} > {self.positive_above:g}"


@dataclass(frozen=True)
class PerformancePolicy:
    margin: float = 0.05
    metrics: tuple[str, ...] = METRICS
    min_labels: int = 200
    fail_on: str = "overall"  # "overall": the whole span only; "any": also any judged window

    def __post_init__(self) -> None:
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
        if self.fail_on not in ("overall", "any"):
            raise ValueError(f"fail_on must be 'overall' or 'any', got {self.fail_on!r}")
        if self.margin < 0:
            raise ValueError(f"margin must not be negative, got {self.margin}")


@dataclass(frozen=True)
class WindowPerformance:
    label: str
    start: datetime | None
    end: datetime | None
    predictions: int
    labelled: int
    positives: int
    roc_auc: float | None
    precision: float | None
    recall: float | None
    predicted_positive_share: float | None
    mean_probability: float | None
    judged: bool
    degraded: tuple[str, ...] = ()

    @property
    def positive_rate(self) -> float | None:
        return self.positives / self.labelled if self.labelled else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["start"] = self.start.isoformat() if self.start else None
        out["end"] = self.end.isoformat() if self.end else None
        out["positive_rate"] = _round(self.positive_rate)
        out["degraded"] = list(self.degraded)
        for key in ("roc_auc", "precision", "recall", "predicted_positive_share"):
            out[key] = _round(out[key])
        out["mean_probability"] = _round(self.mean_probability)
        return out


@dataclass(frozen=True)
class ModelPerformance:
    model_tag: str
    threshold: float
    validation: dict[str, float]
    windows: tuple[WindowPerformance, ...]
    overall: WindowPerformance
    duplicates_dropped: int = 0

    def degraded_windows(self, policy: PerformancePolicy) -> list[WindowPerformance]:
        judged = [self.overall] + ([*self.windows] if policy.fail_on == "any" else [])
        return [w for w in judged if w.degraded]


@dataclass(frozen=True)
class PerformanceResult:
    window: tuple[datetime, datetime]
    now: datetime
    every: timedelta
    outcome: OutcomeSpec
    policy: PerformancePolicy
    models: tuple[ModelPerformance, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> bool:
        return any(m.degraded_windows(self.policy) for m in self.models)

    @property
    def reasons(self) -> list[str]:
        reasons = []
        for model in self.models:
            for w in model.degraded_windows(self.policy):
                for metric in w.degraded:
                    observed = getattr(w, metric)
                    expected = model.validation.get(metric)
                    reasons.append(
                        f"{model.model_tag} {w.label}: {metric} {observed:.3f} < validation "
                        f"{expected:.3f} - {self.policy.margin:g}"
                    )
        return reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "performance",
            "failed": self.failed,
            "reasons": self.reasons,
            "window": {"start": self.window[0].isoformat(), "end": self.window[1].isoformat()},
            "now": self.now.isoformat(),
            "every_seconds": int(self.every.total_seconds()),
            "outcome": asdict(self.outcome) | {"label": self.outcome.describe()},
            "policy": asdict(self.policy),
            "notes": list(self.notes),
            "models": [
                {
                    "model_tag": m.model_tag,
                    "threshold": m.threshold,
                    "validation": {k: _round(m.validation.get(k)) for k in METRICS},
                    "duplicates_dropped": m.duplicates_dropped,
                    "overall": m.overall.to_dict(),
                    "windows": [w.to_dict() for w in m.windows],
                }
                for m in self.models
            ],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def read_outcomes(
    raw_dir: Path,
    now: datetime,
    spec: OutcomeSpec | None = None,
    since: date | None = None,
) -> pd.DataFrame:
    """Outcomes published in the raw layer and knowable at ``now``: key, value, label.

    ``since`` skips day partitions before it (outcomes are filed by the day they
    became knowable, which is never before the prediction).
    """
    spec = spec or OutcomeSpec()
    files = []
    for path in RawLayer(raw_dir).published_files(spec.table):
        try:
            partition = partition_day(path)
        except ValueError:
            partition = None
        if partition is None:  # a snapshot table has no day partitions
            files.append(path)
            continue
        if (since is None or partition >= since) and partition <= now.date():
            files.append(path)
    columns = [spec.key, spec.value, KNOWABLE_AT]
    if not files:
        return pd.DataFrame(
            {spec.key: pd.Series([], dtype="object"), "label": pd.Series([], dtype="int64")}
        )
    table = pa.concat_tables([pq.read_table(f, columns=columns) for f in files])
    frame = table.to_pandas()
    frame = frame[frame[KNOWABLE_AT] <= pd.Timestamp(now)]
    # A diverted flight lands elsewhere with no arrival delay: no label, as in training.
    frame = frame[frame[spec.value].notna()]
    frame = frame.drop_duplicates(spec.key, keep="last")
    return pd.DataFrame(
        {
            spec.key: frame[spec.key].to_numpy(),
            "label": (frame[spec.value] > spec.positive_above).astype("int64").to_numpy(),
        }
    )


def window_metrics(
    label: str,
    start: datetime | None,
    end: datetime | None,
    frame: pd.DataFrame,
    threshold: float,
    validation: dict[str, float],
    policy: PerformancePolicy,
) -> WindowPerformance:
    """``frame``: one row per prediction, ``probability`` and ``label`` (NaN = not known yet)."""
    known = frame[frame["label"].notna()]
    y = known["label"].to_numpy(dtype=int)
    p = known["probability"].to_numpy(dtype=float)
    predicted = (p >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    values: dict[str, float | None] = {
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "precision": float(precision_score(y, predicted, zero_division=0)) if len(y) else None,
        "recall": float(recall_score(y, predicted, zero_division=0)) if y.sum() else None,
    }
    judged = len(y) >= policy.min_labels
    degraded = tuple(
        metric
        for metric in policy.metrics
        if judged
        and (value := values[metric]) is not None
        and metric in validation
        and value < validation[metric] - policy.margin
    )
    return WindowPerformance(
        label=label,
        start=start,
        end=end,
        predictions=len(frame),
        labelled=len(y),
        positives=int(y.sum()),
        roc_auc=values["roc_auc"],
        precision=values["precision"],
        recall=values["recall"],
        predicted_positive_share=float(predicted.mean()) if len(y) else None,
        mean_probability=float(frame["probability"].mean()) if len(frame) else None,
        judged=judged,
        degraded=degraded,
    )


def evaluate_model(
    tag: str,
    predictions: pd.DataFrame,
    outcomes: pd.DataFrame,
    threshold: float,
    validation: dict[str, float],
    window: tuple[datetime, datetime],
    every: timedelta,
    policy: PerformancePolicy,
    key: str = "flight_id",
) -> ModelPerformance:
    """One model's predictions (``flight_id``, ``prediction_time``, ``probability``)."""
    ordered = predictions.sort_values("prediction_time", kind="stable")
    # A flight scored twice (a retry, a replay run again) counts once: its latest score.
    latest = ordered.drop_duplicates(key, keep="last")
    duplicates = len(ordered) - len(latest)
    joined = latest.merge(outcomes[[key, "label"]], on=key, how="left")
    windows = []
    keys = interval_starts(joined["prediction_time"], every)
    for start_key, rows in joined.groupby(keys.to_numpy(), sort=True):
        start = pd.Timestamp(start_key).to_pydatetime()
        end = start + every
        label = start.strftime("%Y-%m-%d") if every == timedelta(days=1) else start.isoformat()
        windows.append(window_metrics(label, start, end, rows, threshold, validation, policy))
    overall = window_metrics("all", *window, joined, threshold, validation, policy)
    return ModelPerformance(
        model_tag=tag,
        threshold=threshold,
        validation={k: validation[k] for k in METRICS if k in validation},
        windows=tuple(windows),
        overall=overall,
        duplicates_dropped=duplicates,
    )


def evaluate(
    predictions: pd.DataFrame,
    outcomes: pd.DataFrame,
    models: dict[str, tuple[float, dict[str, float]]],
    window: tuple[datetime, datetime],
    now: datetime,
    every: timedelta = timedelta(days=1),
    policy: PerformancePolicy | None = None,
    outcome: OutcomeSpec | None = None,
    notes: Sequence[str] = (),
) -> PerformanceResult:
    """``models``: tag -> (threshold, validation metrics), for every tag in ``predictions``."""
    policy = policy or PerformancePolicy()
    outcome = outcome or OutcomeSpec()
    results = []
    for tag, rows in predictions.groupby("model_tag", sort=True):
        threshold, validation = models[str(tag)]
        results.append(
            evaluate_model(
                str(tag), rows, outcomes, threshold, validation, window, every, policy, outcome.key
            )
        )
    return PerformanceResult(
        window=window,
        now=now,
        every=every,
        outcome=outcome,
        policy=policy,
        models=tuple(results),
        notes=tuple(notes),
    )


def build_alert(result: PerformanceResult, report: str | None = None) -> dict[str, Any]:
    """The same envelope as a drift alert (``kind``, ``model_tag``, ``window``, ``reasons``)."""
    degraded: list[dict[str, Any]] = []
    for model in result.models:
        for w in model.degraded_windows(result.policy):
            degraded.extend(
                {
                    "model_tag": model.model_tag,
                    "window": w.label,
                    "metric": metric,
                    "observed": _round(getattr(w, metric)),
                    "validation": _round(model.validation.get(metric)),
                    "labelled": w.labelled,
                    "positive_rate": _round(w.positive_rate),
                }
                for metric in w.degraded
            )
    tags = sorted({d["model_tag"] for d in degraded})
    return {
        "kind": "performance",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_tag": tags[0] if len(tags) == 1 else ",".join(tags) or None,
        "window": {"start": result.window[0].isoformat(), "end": result.window[1].isoformat()},
        "failed": result.failed,
        "reasons": result.reasons,
        "margin": result.policy.margin,
        "degraded": degraded,
        "report": report,
    }
