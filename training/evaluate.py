"""Validation metrics, per-slice metrics, trivial baselines and the decision threshold.

Every function returns plain, JSON-ready values. A metric that is undefined
(ROC-AUC of a slice with one class) is left out rather than stored as NaN or
``None``: JSON has no NaN and BentoML metadata refuses ``None``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

# slice name -> training-set column
SLICES = {
    "carrier": "carrier",
    "origin": "origin",
    "month": "flight_request_features__sched_month",
}
# What the registry keeps per slice (the gate needs rows and ROC-AUC); metrics.json keeps all.
SLICE_SUMMARY = ("rows", "positive_rate", "roc_auc", "pr_auc", "f1")
CALIBRATION_BINS = 10
# Probabilities are clipped before log loss so one confident miss cannot make it infinite.
EPSILON = 1e-6


def _both_classes(y: np.ndarray) -> bool:
    return len(np.unique(y)) == 2


def ranking_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Threshold-free metrics: how well the scores rank and how honest they are."""
    out: dict[str, float] = {"brier": float(brier_score_loss(y, p))}
    if _both_classes(y):
        out["roc_auc"] = float(roc_auc_score(y, p))
        out["pr_auc"] = float(average_precision_score(y, p))
        out["log_loss"] = float(log_loss(y, np.clip(p, EPSILON, 1 - EPSILON), labels=[0, 1]))
    return out


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    predicted = (p >= threshold).astype(int)
    return {
        "rows": len(y),
        "positives": int(y.sum()),
        "positive_rate": float(y.mean()) if len(y) else 0.0,
        "mean_predicted": float(p.mean()) if len(y) else 0.0,
        **ranking_metrics(y, p),
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "threshold": float(threshold),
    }


def confusion(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, int]:
    tn, fp, fn, tp = confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1]).ravel()
    return {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)}


def calibration(
    y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS
) -> dict[str, list[float] | list[int]]:
    """Observed late share against mean predicted probability, in equal-width bins."""
    observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="uniform")
    # The same binning as calibration_curve, which drops empty bins.
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=bins)
    return {
        "mean_predicted": [float(v) for v in predicted],
        "fraction_positive": [float(v) for v in observed],
        "count": [int(c) for c in counts if c > 0],
    }


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The score cut-off that maximises F1 on (y, p): data the validation never sees."""
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(thresholds[int(np.argmax(f1))])


def slice_key(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    return "(missing)" if pd.isna(value) else str(value)


def slice_metrics(
    frame: pd.DataFrame, y: np.ndarray, p: np.ndarray, threshold: float
) -> dict[str, dict[str, dict[str, Any]]]:
    """Metrics per carrier, per origin and per (local) month of departure."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, column in SLICES.items():
        if column not in frame.columns:
            continue
        keys = frame[column].map(slice_key).to_numpy()
        out[name] = {
            key: classification_metrics(y[keys == key], p[keys == key], threshold)
            for key in sorted(set(keys))
        }
    return out


def summarise_slices(
    slices: dict[str, dict[str, dict[str, Any]]],
) -> dict[str, dict[str, dict[str, Any]]]:
    return {
        kind: {key: {k: m[k] for k in SLICE_SUMMARY if k in m} for key, m in groups.items()}
        for kind, groups in slices.items()
    }


def baselines(train: pd.DataFrame, valid: pd.DataFrame, label: str) -> dict[str, dict[str, float]]:
    """Two models any real one must beat, both fitted on training labels only.

    - ``base_rate``: every flight gets the training window's late share;
    - ``carrier_history``: each flight gets its carrier's late share over the
      training window (carriers unseen in training get the base rate).
    """
    y = valid[label].to_numpy()
    base_rate = float(train[label].mean())
    by_carrier = train.groupby("carrier")[label].mean()
    carrier_share = valid["carrier"].map(by_carrier).fillna(base_rate).to_numpy(dtype=float)
    return {
        "base_rate": ranking_metrics(y, np.full(len(y), base_rate)),
        "carrier_history": ranking_metrics(y, carrier_share),
    }


def evaluate(
    train: pd.DataFrame, valid: pd.DataFrame, label: str, p: np.ndarray, threshold: float
) -> dict[str, Any]:
    y = valid[label].to_numpy()
    return {
        "metrics": classification_metrics(y, p, threshold),
        "confusion_matrix": confusion(y, p, threshold),
        "calibration": calibration(y, p),
        "slices": slice_metrics(valid, y, p, threshold),
        "baselines": baselines(train, valid, label),
    }
