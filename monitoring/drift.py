"""Drift between a reference profile and a target profile, column by column.

**Scores.** Every column is binned the same way on both sides and scored by
three statistics, each for a different failure:

- ``psi``, the population stability index over the reference's decile bins
  (numbers) or the most frequent values (text), each with a ``(null)`` bin: has
  the distribution moved?
- ``novel``, the share of the target's rows outside the reference's range
  (numbers) or with values the reference never had (text): a broken sensor,
  a new code, a unit change.
- ``nulls``, how far the null share moved (absolute): a feature going missing.

The Jensen-Shannon distance (base 2, 0..1) over the same bins is reported for
information. It is not a second vote: for small shifts PSI ≈ 5.5·JS², so a
pair of thresholds only agrees when JS = √(PSI/5.5), and the old pair (PSI 0.2,
JS 0.1) made JS decide most verdicts at an effective PSI of 0.055. Without a
calibration the defaults keep that agreement (PSI 0.2, JS 0.19).

**Verdict.** A column is judged against its own history when the reference has
a calibration (``monitoring.calibration``): a statistic trips when it is above
the ``policy.quantile`` of the scores that windows of the same length inside
the reference period got, *and* above a floor that makes it material. Weather
over three days naturally differs from weather over five months far more than
the share of wide-body aircraft does; one fixed threshold cannot serve both.
A statistic far beyond anything seen in calibration (``severe_factor`` times
the largest null score, and above a severe floor) fails the run on its own: it
is what a broken sensor looks like. Columns the calibration found not
comparable by construction (the month and weekday: one value per day) are
shown but not judged.

**Policy.** The run fails on any severe column, when more than
``max_drift_share`` of the judged features drift, when the importance-weighted
share of drifted features (permutation importance from training) exceeds
``max_weighted_share``, when the prediction (the model's output) drifts, or when
a ``critical`` column drifts. whylogs' own tests (KS, chi-square, Hellinger) are
reported as information: their p-values on tens of thousands of rows call
trivial differences significant.

Scores come from the profiles' exact histograms, so they are repeatable bit for
bit; profiles without them fall back to whylogs' (randomised) sketches.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.spatial.distance import jensenshannon

from monitoring import histograms
from monitoring.histograms import Histogram
from monitoring.profiles import ColumnStats, Profile, WhylogsDrift, whylogs_drift

if TYPE_CHECKING:
    from monitoring.calibration import Calibration

# PSI's log ratio is undefined for empty bins; 1e-4 is the usual floor (Evidently's too).
_FLOOR = 1e-4
NULL_BIN = "(null)"
OTHER_BIN = "(other)"
STATISTICS = ("psi", "novel", "nulls")
STATISTIC_NAMES = {"psi": "PSI", "novel": "outside reference", "nulls": "null share moved"}


class DriftInputError(ValueError):
    """The profiles cannot be compared (no common columns, unknown critical column)."""


@dataclass(frozen=True)
class DriftPolicy:
    """When a column drifts, and when a whole comparison fails.

    Calibrated columns: a statistic trips above the ``quantile`` of its null
    and above its floor; it is severe above ``severe_factor`` x the null's
    largest score and above its severe floor. Uncalibrated columns: PSI >=
    ``psi_threshold`` or JS >= ``js_threshold`` (which agree, see the module
    docstring), novel or nulls >= their severe floors.
    """

    psi_threshold: float = 0.2
    js_threshold: float = 0.19
    max_drift_share: float = 0.3
    max_weighted_share: float = 0.5
    quantile: float = 0.99
    psi_floor: float = 0.1
    novel_floor: float = 0.01
    nulls_floor: float = 0.02
    severe_factor: float = 2.0
    psi_severe: float = 1.0
    novel_severe: float = 0.02
    nulls_severe: float = 0.1
    fail_on_prediction: bool = True
    critical: tuple[str, ...] = ()
    hellinger: tuple[str, ...] = ()
    not_comparable: tuple[str, ...] = ()
    bins: int = 10
    max_categories: int = 20

    def __post_init__(self) -> None:
        for name in ("max_drift_share", "max_weighted_share", "quantile"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name.replace('_', ' ')} must be within 0..1, got {value}")
        if self.bins < 2:
            raise ValueError(f"bins must be at least 2, got {self.bins}")
        if self.severe_factor < 1:
            raise ValueError(f"severe factor must be at least 1, got {self.severe_factor}")

    def floor(self, statistic: str) -> float:
        return float(getattr(self, f"{statistic}_floor"))

    def severe_floor(self, statistic: str) -> float:
        return float(getattr(self, f"{statistic}_severe"))


@dataclass(frozen=True)
class Binned:
    """Both sides' shares over common bins (they sum to 1, the null bin included)."""

    labels: tuple[str, ...]
    reference: tuple[float, ...]
    target: tuple[float, ...]


@dataclass(frozen=True)
class Scores:
    """One column's statistics; ``binned`` is what PSI and JS were computed on."""

    kind: str
    psi: float | None
    js: float | None
    novel: float | None
    nulls: float | None
    binned: Binned | None
    note: str = ""

    def value(self, statistic: str) -> float | None:
        return getattr(self, statistic)


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str
    drifted: bool
    psi: float | None
    js: float | None
    whylogs: WhylogsDrift | None
    reference_count: int
    target_count: int
    reference_null_share: float
    target_null_share: float
    binned: Binned | None = None
    note: str = ""
    novel: float | None = None
    null_delta: float | None = None
    role: str = "feature"  # feature | prediction | label
    judged: bool = True
    severe: bool = False
    criteria: tuple[str, ...] = ()  # what tripped, in words
    thresholds: dict[str, float] = field(default_factory=dict)  # statistic -> drift threshold
    normal: str = ""  # what the calibration says is normal for this window length
    importance: float | None = None


@dataclass(frozen=True)
class DriftResult:
    columns: tuple[ColumnDrift, ...]
    policy: DriftPolicy
    reference_rows: int
    target_rows: int
    target_window: tuple[datetime | None, datetime | None] = (None, None)
    only_in_reference: tuple[str, ...] = ()
    only_in_target: tuple[str, ...] = ()
    reference_metadata: dict[str, str] = field(default_factory=dict)
    target_metadata: dict[str, str] = field(default_factory=dict)
    reference_window: tuple[datetime | None, datetime | None] = (None, None)
    window_days: int | None = None
    calibrated_days: int | None = None  # the calibrated window length used, if any
    calibration_note: str = ""
    deterministic: bool = True

    @property
    def drifted(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.drifted]

    @property
    def features(self) -> list[ColumnDrift]:
        """The judged input columns (not the prediction, not calendar columns)."""
        return [c for c in self.columns if c.role == "feature" and c.judged]

    @property
    def drifted_features(self) -> list[ColumnDrift]:
        return [c for c in self.features if c.drifted]

    @property
    def drift_share(self) -> float:
        features = self.features
        return len(self.drifted_features) / len(features) if features else 0.0

    @property
    def weighted_share(self) -> float | None:
        """Importance-weighted share of drifted features; None without importances."""
        weights = {c.column: max(c.importance or 0.0, 0.0) for c in self.features}
        total = sum(weights.values())
        if not any(c.importance is not None for c in self.features) or total <= 0:
            return None
        return sum(weights[c.column] for c in self.drifted_features) / total

    @property
    def prediction(self) -> ColumnDrift | None:
        return next((c for c in self.columns if c.role == "prediction"), None)

    @property
    def severe(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.severe]

    @property
    def critical_drifted(self) -> list[str]:
        return [c.column for c in self.drifted if c.column in self.policy.critical]

    @property
    def failed(self) -> bool:
        return bool(self.reasons)

    @property
    def reasons(self) -> list[str]:
        reasons = []
        policy = self.policy
        if self.severe:
            reasons.append(
                "far outside history: "
                + "; ".join(f"{c.column} ({', '.join(c.criteria)})" for c in self.severe)
            )
        if self.drift_share > policy.max_drift_share:
            reasons.append(
                f"{len(self.drifted_features)} of {len(self.features)} features drifted "
                f"({self.drift_share:.0%} > {policy.max_drift_share:.0%})"
            )
        weighted = self.weighted_share
        if weighted is not None and weighted > policy.max_weighted_share:
            reasons.append(
                f"drifted features carry {weighted:.0%} of the model's importance "
                f"(> {policy.max_weighted_share:.0%})"
            )
        prediction = self.prediction
        # A severe prediction is named above already.
        if (
            policy.fail_on_prediction
            and prediction
            and prediction.drifted
            and not prediction.severe
        ):
            reasons.append(f"prediction drifted: {', '.join(prediction.criteria)}")
        if self.critical_drifted:
            reasons.append(f"critical columns drifted: {', '.join(self.critical_drifted)}")
        return reasons

    def to_dict(self) -> dict[str, Any]:
        start, end = self.target_window
        ref_start, ref_end = self.reference_window
        prediction = self.prediction
        weighted = self.weighted_share
        return {
            "failed": self.failed,
            "reasons": self.reasons,
            "drift_share": round(self.drift_share, 6),
            "weighted_drift_share": None if weighted is None else round(weighted, 6),
            "drifted": [c.column for c in self.drifted],
            "drifted_features": [c.column for c in self.drifted_features],
            "severe": [c.column for c in self.severe],
            "prediction": None if prediction is None else _column_dict(prediction),
            "policy": asdict(self.policy),
            "reference_rows": self.reference_rows,
            "target_rows": self.target_rows,
            "target_window": {
                "start": start.isoformat() if start else None,
                "end": end.isoformat() if end else None,
                "days": self.window_days,
            },
            "reference_window": {
                "start": ref_start.isoformat() if ref_start else None,
                "end": ref_end.isoformat() if ref_end else None,
            },
            "calibrated_days": self.calibrated_days,
            "calibration_note": self.calibration_note,
            "deterministic": self.deterministic,
            "only_in_reference": list(self.only_in_reference),
            "only_in_target": list(self.only_in_target),
            "reference_metadata": {
                k: v for k, v in self.reference_metadata.items() if k != IMPORTANCE_KEY
            },
            "target_metadata": self.target_metadata,
            "columns": [_column_dict(c) for c in self.columns],
        }


# The reference profile's metadata key for training's permutation importance (JSON).
IMPORTANCE_KEY = "feature_importance"


def _column_dict(column: ColumnDrift) -> dict[str, Any]:
    out = asdict(column)
    for name in ("psi", "js", "novel", "null_delta", "importance"):
        out[name] = _round(getattr(column, name))
    if column.binned is not None:
        out["binned"] = {
            "labels": list(column.binned.labels),
            "reference": [round(p, 6) for p in column.binned.reference],
            "target": [round(p, 6) for p in column.binned.target],
        }
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def psi(reference: Sequence[float], target: Sequence[float]) -> float:
    ref = np.clip(np.asarray(reference, dtype=float), _FLOOR, None)
    tgt = np.clip(np.asarray(target, dtype=float), _FLOOR, None)
    return float(np.sum((tgt - ref) * np.log(tgt / ref)))


def js_distance(reference: Sequence[float], target: Sequence[float]) -> float:
    value = float(jensenshannon(np.asarray(reference), np.asarray(target), base=2))
    return 0.0 if math.isnan(value) else value


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _edges_and_labels(lo: float, hi: float, inner: set[float]) -> tuple[list[float], list[str]]:
    edges = [math.nextafter(lo, -math.inf), *sorted(inner)]
    # Right-closed bins: (-inf, below lo], (.., lo], (lo, q1], ..., (q_k, hi], (hi, inf).
    labels = [f"< {_fmt(lo)}", f"= {_fmt(lo)}"]
    labels += [f"({_fmt(a)}, {_fmt(b)}]" for a, b in itertools.pairwise(edges[1:])]
    labels.append(f"> {_fmt(hi)}")
    return edges, labels


# -- scores from exact histograms (repeatable) --------------------------------------------
def _null_share(histogram: Histogram) -> float:
    return histogram.nulls / histogram.total if histogram.total else 0.0


def _with_null_share(null_share: float, shares: Sequence[float]) -> tuple[float, ...]:
    return (null_share, *((1.0 - null_share) * s for s in shares))


def score_histograms(
    reference: Histogram, target: Histogram, bins: int = 10, max_categories: int = 20
) -> Scores:
    """The column's statistics from exact histograms: same input, same bits out."""
    return HistogramScorer(reference, bins, max_categories).score(target)


class HistogramScorer:
    """Scores targets against one reference histogram.

    The reference's side (its decile edges and shares, its value counts) is worked out
    once: a calibration scores hundreds of windows against the same reference, and
    redoing it per window was most of the calibration's time. Every target gets the
    same arithmetic as a lone :func:`score_histograms` call, so the same bits.
    """

    def __init__(self, reference: Histogram, bins: int = 10, max_categories: int = 20) -> None:
        self.reference = reference
        self.max_categories = max_categories
        self._null = _null_share(reference)
        self._edges: list[float] = []
        self._labels: tuple[str, ...] = ()
        self._shares: tuple[float, ...] = ()
        if reference.kind == "numeric":
            lo, hi = reference.keys[0], reference.keys[-1]
            levels = [i / bins for i in range(1, bins)]
            self._edges, labels = _edges_and_labels(
                lo, hi, {lo, hi, *histograms.quantiles(reference, levels)}
            )
            self._labels = (NULL_BIN, *labels)
            self._shares = _with_null_share(self._null, histograms.pmf(reference, self._edges))
        elif reference.kind == "categorical":
            self._counts = dict(zip(reference.keys, reference.counts, strict=True))
            self._top = _top(self._counts, max_categories)

    def score(self, target: Histogram) -> Scores:
        reference = self.reference
        ref_null, tgt_null = self._null, _null_share(target)
        null_delta = abs(tgt_null - ref_null)
        if not reference.total or not target.total:
            return Scores("empty", None, None, None, None, None, "no rows on one side")
        kinds = {reference.kind, target.kind}
        if kinds == {"numeric", "categorical"}:
            note = f"type changed: {reference.kind} in reference, {target.kind} in target"
            return Scores("mixed", None, None, 1.0, null_delta, None, note)
        note = ""
        if "empty" in kinds:
            kind = "empty" if kinds == {"empty"} else next(iter(kinds - {"empty"}))
            binned = Binned(
                (NULL_BIN, "(value)"), (ref_null, 1 - ref_null), (tgt_null, 1 - tgt_null)
            )
            novel = (1 - tgt_null) if reference.kind == "empty" else 0.0
            note = "no values on one side" if kind != "empty" else "no values"
        elif reference.kind == "numeric":
            return self._numeric(tgt_null, null_delta, histograms.pmf(target, self._edges))
        else:
            kind = "categorical"
            ref_counts = self._counts
            tgt_counts = dict(zip(target.keys, target.counts, strict=True))
            chosen = list(self._top)
            chosen += [v for v in _top(tgt_counts, self.max_categories) if v not in chosen]
            binned = Binned(
                (NULL_BIN, *chosen, OTHER_BIN),
                _exact_category_shares(reference, ref_counts, chosen),
                _exact_category_shares(target, tgt_counts, chosen),
            )
            unseen = sum(c for v, c in tgt_counts.items() if v not in ref_counts)
            novel = unseen / target.total
        return _scored(kind, binned, novel, null_delta, note)

    def bin_counts(self, histogram: Histogram) -> np.ndarray | None:
        """A target's counts on this numeric reference's bins (None unless both are
        numeric): counts add up, so a window's are the sum of its days'."""
        if self.reference.kind != "numeric" or histogram.kind != "numeric":
            return None
        return histograms.bin_counts(histogram, self._edges)

    def score_counts(self, counts: np.ndarray, nulls: int) -> Scores:
        """:meth:`score` of a numeric target given by its :meth:`bin_counts` (not all
        zero) and its nulls: the same bits, without merging the target's histograms."""
        present = int(counts.sum())
        tgt_null = nulls / (present + nulls)
        return self._numeric(tgt_null, abs(tgt_null - self._null), histograms.shares(counts))

    def _numeric(self, tgt_null: float, null_delta: float, shares: list[float]) -> Scores:
        binned = Binned(self._labels, self._shares, _with_null_share(tgt_null, shares))
        return _scored("numeric", binned, binned.target[1] + binned.target[-1], null_delta, "")


def _top(counts: Mapping[str, int], limit: int) -> list[str]:
    return [v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def _exact_category_shares(
    histogram: Histogram, counts: Mapping[str, int], chosen: list[str]
) -> tuple[float, ...]:
    total = histogram.total
    shares = [counts.get(v, 0) / total for v in chosen]
    other = max(0.0, 1.0 - histogram.nulls / total - sum(shares))
    return (histogram.nulls / total, *shares, other)


# -- scores from whylogs' sketches (profiles written without histograms) -------------------
def numeric_bins(reference: Profile, target: Profile, column: str, bins: int) -> Binned:
    ref_stats, tgt_stats = reference.stats(column), target.stats(column)
    lo, hi = ref_stats.minimum, ref_stats.maximum
    if lo is None or hi is None:
        raise ValueError(f"column {column!r} has no numeric values in the reference")
    levels = [i / bins for i in range(1, bins)]
    edges, labels = _edges_and_labels(lo, hi, {lo, hi, *reference.quantiles(column, levels)})
    return Binned(
        labels=(NULL_BIN, *labels),
        reference=_with_nulls(ref_stats, reference.pmf(column, edges)),
        target=_with_nulls(tgt_stats, target.pmf(column, edges)),
    )


def _with_nulls(stats: ColumnStats, shares: Sequence[float]) -> tuple[float, ...]:
    return _with_null_share(stats.null_share, shares)


def categorical_bins(
    reference: Profile, target: Profile, column: str, max_categories: int
) -> Binned:
    ref_stats, tgt_stats = reference.stats(column), target.stats(column)
    ref_items = dict(reference.frequent_items(column))
    tgt_items = dict(target.frequent_items(column))
    # The most frequent values of either side, so a new dominant value shows by name.
    chosen = list(ref_items)[:max_categories]
    chosen += [v for v in list(tgt_items)[:max_categories] if v not in chosen]
    return Binned(
        labels=(NULL_BIN, *chosen, OTHER_BIN),
        reference=_category_shares(ref_stats, ref_items, chosen),
        target=_category_shares(tgt_stats, tgt_items, chosen),
    )


def _category_shares(
    stats: ColumnStats, items: dict[str, int], chosen: list[str]
) -> tuple[float, ...]:
    if not stats.count:
        return (0.0,) * (len(chosen) + 2)
    shares = [items.get(v, 0) / stats.count for v in chosen]
    other = max(0.0, 1.0 - stats.null_share - sum(shares))
    return (stats.null_share, *shares, other)


def score_sketches(reference: Profile, target: Profile, column: str, policy: DriftPolicy) -> Scores:
    ref, tgt = reference.stats(column), target.stats(column)
    kinds = {ref.kind, tgt.kind}
    null_delta = abs(tgt.null_share - ref.null_share)
    if ref.count == 0 or tgt.count == 0:
        return Scores("empty", None, None, None, None, None, "no rows on one side")
    if kinds == {"numeric", "categorical"}:
        note = f"type changed: {ref.kind} in reference, {tgt.kind} in target"
        return Scores("mixed", None, None, 1.0, null_delta, None, note)
    note = ""
    if ref.kind == "empty" or tgt.kind == "empty":
        kind = "empty" if kinds == {"empty"} else next(iter(kinds - {"empty"}))
        binned = Binned(
            (NULL_BIN, "(value)"),
            (ref.null_share, 1 - ref.null_share),
            (tgt.null_share, 1 - tgt.null_share),
        )
        novel = (1 - tgt.null_share) if ref.kind == "empty" else 0.0
        note = "no values on one side" if kind != "empty" else "no values"
    elif ref.kind == "numeric":
        kind = "numeric"
        binned = numeric_bins(reference, target, column, policy.bins)
        novel = binned.target[1] + binned.target[-1]
    else:
        kind = "categorical"
        binned = categorical_bins(reference, target, column, policy.max_categories)
        novel = sum(t for r, t in zip(binned.reference[1:-1], binned.target[1:-1], strict=True)
                    if r == 0)  # fmt: skip
    return _scored(kind, binned, novel, null_delta, note)


def _scored(kind: str, binned: Binned, novel: float, null_delta: float, note: str) -> Scores:
    return Scores(
        kind,
        psi(binned.reference, binned.target),
        js_distance(binned.reference, binned.target),
        novel,
        null_delta,
        binned,
        note,
    )


def score_column(reference: Profile, target: Profile, column: str, policy: DriftPolicy) -> Scores:
    ref_hist, tgt_hist = reference.histogram(column), target.histogram(column)
    if ref_hist is not None and tgt_hist is not None:
        return score_histograms(ref_hist, tgt_hist, policy.bins, policy.max_categories)
    return score_sketches(reference, target, column, policy)


# -- judging -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Judgement:
    drifted: bool
    severe: bool
    criteria: tuple[str, ...]
    thresholds: dict[str, float]
    normal: str = ""


def _format(statistic: str, value: float) -> str:
    return f"{value:.3g}" if statistic == "psi" else f"{value:.1%}"


def _describe(statistic: str, value: float) -> str:
    if statistic == "psi":
        return f"PSI {value:.3g}"
    if statistic == "novel":
        return f"{value:.1%} outside the reference"
    return f"null share moved {value:.1%}"


def judge(
    scores: Scores,
    policy: DriftPolicy,
    null: Mapping[str, Sequence[float]] | None = None,
    days: int | None = None,
) -> Judgement:
    """Which statistics trip, against the column's null (``null[statistic]``: sorted
    scores of in-history windows of ``days``) or, without one, fixed thresholds."""
    if scores.kind == "mixed":
        return Judgement(True, True, (scores.note,), {})
    criteria, severe, thresholds = [], False, {}
    for statistic in STATISTICS:
        value = scores.value(statistic)
        if value is None:
            continue
        sample = null.get(statistic) if null else None
        if sample:
            threshold = max(_quantile(sample, policy.quantile), policy.floor(statistic))
            severe_at = max(policy.severe_factor * sample[-1], policy.severe_floor(statistic))
            tripped = value > threshold
            basis = f"normal up to {_format(statistic, threshold)} for {days}-day windows"
        else:
            fixed = policy.psi_threshold if statistic == "psi" else policy.severe_floor(statistic)
            threshold, severe_at = fixed, math.inf
            by_js = statistic == "psi" and (scores.js or 0.0) >= policy.js_threshold
            tripped = value >= threshold or by_js
            basis = f"fixed threshold {_format(statistic, threshold)}"
            if by_js and value < threshold:
                basis = f"JS {scores.js:.3g} >= {policy.js_threshold:g}, fixed threshold"
        thresholds[statistic] = threshold
        if not tripped:
            continue
        if value >= severe_at:
            severe = True
            basis += f"; severe from {_format(statistic, severe_at)}"
        criteria.append(f"{_describe(statistic, value)} ({basis})")
    normal = ""
    if null and null.get("psi"):
        sample = null["psi"]
        normal = (
            f"normal for {days}-day windows: PSI median {_quantile(sample, 0.5):.3g}, "
            f"p{policy.quantile * 100:g} {_quantile(sample, policy.quantile):.3g}, "
            f"max {sample[-1]:.3g} ({len(sample)} windows)"
        )
    return Judgement(bool(criteria), severe, tuple(criteria), thresholds, normal)


def _quantile(sorted_values: Sequence[float], level: float) -> float:
    """The empirical quantile (the smallest value at or above the level's rank)."""
    rank = max(1, math.ceil(level * len(sorted_values)))
    return float(sorted_values[rank - 1])


def window_days(window: tuple[datetime | None, datetime | None]) -> int | None:
    start, end = window
    if start is None or end is None:
        return None
    return max(1, round((end - start).total_seconds() / 86400))


def _importances(reference: Profile) -> dict[str, float]:
    import json

    text = reference.metadata.get(IMPORTANCE_KEY)
    return {str(k): float(v) for k, v in json.loads(text).items()} if text else {}


def compare(
    reference: Profile,
    target: Profile,
    policy: DriftPolicy | None = None,
    *,
    columns: Sequence[str] | None = None,
    on_column: Callable[[str], None] | None = None,
    calibration: Calibration | None = None,
) -> DriftResult:
    """Compare every column the two profiles share (or ``columns``)."""
    policy = policy or DriftPolicy()
    ref_columns, tgt_columns = set(reference.columns), set(target.columns)
    common = sorted(ref_columns & tgt_columns)
    if columns is not None:
        unknown = [c for c in columns if c not in common]
        if unknown:
            raise DriftInputError(f"columns not in both profiles: {', '.join(unknown)}")
        common = [c for c in common if c in set(columns)]
    if not common:
        raise DriftInputError("reference and target have no columns in common")
    missing_critical = [c for c in policy.critical if c not in common]
    if missing_critical:
        raise DriftInputError(
            f"critical columns not in both profiles: {', '.join(missing_critical)}"
        )
    scores = whylogs_drift(reference, target, [c for c in policy.hellinger if c in common])
    days = window_days(target.window)
    calibrated_days = calibration.nearest_length(days) if calibration is not None else None
    not_comparable = dict(calibration.not_comparable) if calibration is not None else {}
    not_comparable.update({c: "declared not comparable" for c in policy.not_comparable})
    importances = _importances(reference)
    prediction_column = reference.metadata.get("prediction_column") or ""
    label_column = reference.metadata.get("label_column") or ""
    results = []
    for column in common:
        col_scores = score_column(reference, target, column, policy)
        null = calibration.null(column, calibrated_days) if calibration is not None else None
        judgement = judge(col_scores, policy, null, calibrated_days)
        role = {prediction_column: "prediction", label_column: "label"}.get(column, "feature")
        judged = column not in not_comparable
        note = col_scores.note
        if not judged:
            note = f"not judged: {not_comparable[column]}"
        ref_stats, tgt_stats = reference.stats(column), target.stats(column)
        results.append(
            ColumnDrift(
                column=column,
                kind=col_scores.kind,
                drifted=judged and judgement.drifted,
                psi=col_scores.psi,
                js=col_scores.js,
                whylogs=scores.get(column),
                reference_count=ref_stats.count,
                target_count=tgt_stats.count,
                reference_null_share=ref_stats.null_share,
                target_null_share=tgt_stats.null_share,
                binned=col_scores.binned,
                note=note,
                novel=col_scores.novel,
                null_delta=col_scores.nulls,
                role=role,
                judged=judged,
                severe=judged and judgement.severe,
                criteria=judgement.criteria if judged else (),
                thresholds=judgement.thresholds,
                normal=judgement.normal,
                importance=importances.get(column),
            )
        )
        if on_column is not None:
            on_column(column)
    if calibration is None:
        calibration_note = "no calibration: fixed thresholds"
    elif days is None:
        calibration_note = f"target window unknown: judged as {calibrated_days}-day windows"
    else:
        calibration_note = (
            f"{days}-day window judged against {calibrated_days}-day windows of "
            f"{calibration.describe_reference()}"
        )
    return DriftResult(
        columns=tuple(results),
        policy=policy,
        reference_rows=reference.rows,
        target_rows=target.rows,
        target_window=target.window,
        only_in_reference=tuple(sorted(ref_columns - tgt_columns)),
        only_in_target=tuple(sorted(tgt_columns - ref_columns)),
        reference_metadata=reference.metadata,
        target_metadata=target.metadata,
        reference_window=reference.window,
        window_days=days,
        calibrated_days=calibrated_days,
        calibration_note=calibration_note,
        deterministic=reference.has_histograms and target.has_histograms,
    )
