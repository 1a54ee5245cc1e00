"""The model card: what a model is for, what it saw, and how it behaves per slice.

Per slice of the validation rows (carrier, origin airport, aircraft age band)
the card holds the calibration (mean predicted probability against the
observed late share), the false-positive and false-negative rates at the
model's threshold, and ROC-AUC. Slices with fewer than ``min_slice_rows`` rows
are listed but not checked: their rates are mostly noise.

The bias checks compare each checked slice with the whole validation set: a
calibration gap (mean predicted minus observed, in probability) and a
disparity in FPR or FNR (the slice's rate minus the overall rate). The
promotion gate refuses a candidate whose worst slice exceeds its bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

AIRCRAFT_AGE = "aircraft_age"
YEAR_BUILT = "plane_attributes__year_built"
DEPARTURE = "sched_dep_ts"
# slice family -> the training-set column it groups by (aircraft age is derived)
FAMILIES = {"carrier": "carrier", "origin": "origin", AIRCRAFT_AGE: YEAR_BUILT}
AGE_BANDS = ((0, "0-4 years"), (5, "5-9 years"), (10, "10-14 years"), (15, "15-19 years"))
OLDEST_BAND = "20+ years"
UNKNOWN = "(unknown)"
# What the checks read, and how people see them.
MEASURES = {
    "calibration_gap": "calibration gap (mean predicted - observed late share)",
    "fpr_disparity": "false-positive-rate disparity (slice FPR - overall FPR)",
    "fnr_disparity": "false-negative-rate disparity (slice FNR - overall FNR)",
}

INTENDED_USE = (
    "Ranks scheduled departures from New York (EWR, JFK, LGA) by the chance that they "
    "arrive more than 15 minutes late, two hours before departure, from features "
    "known at that time. For operational triage (which flights to watch); not for "
    "decisions about individual passengers or crews, and not for other airports."
)
LIMITATIONS = (
    "Trained on 2013 flights out of New York only; behaviour elsewhere or in other "
    "years is unknown.",
    "Cancelled and diverted flights are left out of training and validation, so the "
    "probability is of a late arrival given that the flight lands.",
    "Slices with few validation rows are not checked; their rates are noisy.",
    "Weather and congestion features are hourly; sudden events inside an hour are invisible.",
    "Aircraft with no registry entry get no age band and no aircraft features.",
)


def age_bands(frame: pd.DataFrame) -> pd.Series:
    """Each flight's aircraft age band: departure year minus year built."""
    if YEAR_BUILT not in frame.columns:
        return pd.Series(UNKNOWN, index=frame.index)
    age = frame[DEPARTURE].dt.year - pd.to_numeric(frame[YEAR_BUILT], errors="coerce")
    bands = pd.Series(OLDEST_BAND, index=frame.index, dtype=object)
    for (low, label), (high, _) in zip(AGE_BANDS, (*AGE_BANDS[1:], (20, "")), strict=True):
        bands[(age >= low) & (age < high)] = label
    bands[age.isna() | (age < 0)] = UNKNOWN
    return bands


def slice_keys(frame: pd.DataFrame, family: str) -> np.ndarray:
    if family == AIRCRAFT_AGE:
        return age_bands(frame).to_numpy()
    column = FAMILIES[family]
    return frame[column].fillna(UNKNOWN).astype(str).to_numpy()


def group_stats(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = p >= threshold
    negatives, positives = int((y == 0).sum()), int((y == 1).sum())
    out: dict[str, float] = {
        "rows": len(y),
        "late_share": float(y.mean()),
        "mean_predicted": float(p.mean()),
        "calibration_gap": float(p.mean() - y.mean()),
    }
    if negatives:
        out["fpr"] = float((predicted & (y == 0)).sum() / negatives)
    if positives:
        out["fnr"] = float((~predicted & (y == 1)).sum() / positives)
    if negatives and positives:
        out["roc_auc"] = float(roc_auc_score(y, p))
    return out


def slice_table(
    frame: pd.DataFrame, y: np.ndarray, p: np.ndarray, threshold: float, min_slice_rows: int
) -> dict[str, Any]:
    """Overall and per-slice stats; each slice marked ``checked`` if it has enough rows."""
    overall = group_stats(y, p, threshold)
    slices: dict[str, dict[str, dict[str, Any]]] = {}
    for family in FAMILIES:
        keys = slice_keys(frame, family)
        groups = {}
        for key in sorted(set(keys)):
            mask = keys == key
            stats: dict[str, Any] = group_stats(y[mask], p[mask], threshold)
            for rate in ("fpr", "fnr"):
                if rate in stats and rate in overall:
                    stats[f"{rate}_disparity"] = stats[rate] - overall[rate]
            stats["checked"] = bool(mask.sum() >= min_slice_rows)
            groups[str(key)] = stats
        slices[family] = groups
    return {"overall": overall, "slices": slices, "min_slice_rows": min_slice_rows}


def build_card(
    table: dict[str, Any], threshold: float, data_window: dict[str, Any]
) -> dict[str, Any]:
    return {
        "intended_use": INTENDED_USE,
        "limitations": list(LIMITATIONS),
        "data_window": data_window,
        "threshold": threshold,
        **table,
    }


@dataclass(frozen=True)
class Finding:
    """One checked slice over one bound."""

    slice: str
    measure: str
    value: float
    bound: float
    rows: int

    def describe(self) -> str:
        return (
            f"{self.slice}: {MEASURES[self.measure]} {self.value:+.3f} exceeds "
            f"{self.bound} ({self.rows:,} rows)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "slice": self.slice,
            "measure": self.measure,
            "value": self.value,
            "bound": self.bound,
            "rows": self.rows,
        }


def bias_findings(
    card: dict[str, Any], max_calibration_gap: float, max_rate_disparity: float, min_rows: int
) -> tuple[list[Finding], dict[str, Finding | None]]:
    """Every slice with ``min_rows`` or more rows that is over a bound (worst first), and
    the worst slice per measure."""
    bounds = {
        "calibration_gap": max_calibration_gap,
        "fpr_disparity": max_rate_disparity,
        "fnr_disparity": max_rate_disparity,
    }
    over: list[Finding] = []
    worst: dict[str, Finding | None] = dict.fromkeys(bounds)
    for family, groups in card.get("slices", {}).items():
        for key, stats in groups.items():
            if stats.get("rows", 0) < min_rows:
                continue
            for measure, bound in bounds.items():
                if measure not in stats:
                    continue
                finding = Finding(
                    f"{family}={key}", measure, float(stats[measure]), bound, int(stats["rows"])
                )
                current = worst[measure]
                if current is None or abs(finding.value) > abs(current.value):
                    worst[measure] = finding
                if abs(finding.value) > bound:
                    over.append(finding)
    over.sort(key=lambda f: abs(f.value) / f.bound if f.bound else float("inf"), reverse=True)
    return over, worst
