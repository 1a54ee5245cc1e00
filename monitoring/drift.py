"""Drift between a reference profile and a target profile, column by column.

Per column it reports whylogs' own test (KS for numbers, chi-square for
categories, Hellinger where configured) and two effect sizes computed from the
profiles' sketches: the population stability index (PSI) and the Jensen-Shannon
distance (base 2, 0..1). The verdict uses the effect sizes only. On tens of
thousands of rows a KS p-value calls trivial differences significant (two halves
of one week of data come out as "possible drift"), while PSI and JS measure how
far the distribution actually moved.

Bins: numbers use the reference's quantiles as right-closed bin edges, plus one
bin below the reference minimum and one above its maximum; categories use the
most frequent values of either side plus "(other)". Every distribution also has
a "(null)" bin, so a feature that goes missing in serving counts as drift.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

from monitoring.profiles import ColumnStats, Profile, WhylogsDrift, whylogs_drift

# PSI's log ratio is undefined for empty bins; 1e-4 is the usual floor (Evidently's too).
_FLOOR = 1e-4
NULL_BIN = "(null)"
OTHER_BIN = "(other)"


class DriftInputError(ValueError):
    """The profiles cannot be compared (no common columns, unknown critical column)."""


@dataclass(frozen=True)
class DriftPolicy:
    """When a column drifts, and when a whole comparison fails."""

    psi_threshold: float = 0.2
    js_threshold: float = 0.1
    max_drift_share: float = 0.3
    critical: tuple[str, ...] = ()
    hellinger: tuple[str, ...] = ()
    bins: int = 10
    max_categories: int = 20

    def __post_init__(self) -> None:
        if not 0 <= self.max_drift_share <= 1:
            raise ValueError(f"max drift share must be within 0..1, got {self.max_drift_share}")
        if self.bins < 2:
            raise ValueError(f"bins must be at least 2, got {self.bins}")


@dataclass(frozen=True)
class Binned:
    """Both sides' shares over common bins (they sum to 1, the null bin included)."""

    labels: tuple[str, ...]
    reference: tuple[float, ...]
    target: tuple[float, ...]


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

    @property
    def drifted(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.drifted]

    @property
    def drift_share(self) -> float:
        return len(self.drifted) / len(self.columns) if self.columns else 0.0

    @property
    def critical_drifted(self) -> list[str]:
        return [c.column for c in self.drifted if c.column in self.policy.critical]

    @property
    def failed(self) -> bool:
        return bool(self.reasons)

    @property
    def reasons(self) -> list[str]:
        reasons = []
        if self.drift_share > self.policy.max_drift_share:
            reasons.append(
                f"{len(self.drifted)} of {len(self.columns)} columns drifted "
                f"({self.drift_share:.0%} > {self.policy.max_drift_share:.0%})"
            )
        if self.critical_drifted:
            reasons.append(f"critical columns drifted: {', '.join(self.critical_drifted)}")
        return reasons

    def to_dict(self) -> dict[str, Any]:
        start, end = self.target_window
        return {
            "failed": self.failed,
            "reasons": self.reasons,
            "drift_share": round(self.drift_share, 6),
            "drifted": [c.column for c in self.drifted],
            "policy": asdict(self.policy),
            "reference_rows": self.reference_rows,
            "target_rows": self.target_rows,
            "target_window": {
                "start": start.isoformat() if start else None,
                "end": end.isoformat() if end else None,
            },
            "only_in_reference": list(self.only_in_reference),
            "only_in_target": list(self.only_in_target),
            "reference_metadata": self.reference_metadata,
            "target_metadata": self.target_metadata,
            "columns": [_column_dict(c) for c in self.columns],
        }


def _column_dict(column: ColumnDrift) -> dict[str, Any]:
    out = asdict(column)
    out["psi"] = _round(column.psi)
    out["js"] = _round(column.js)
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


def numeric_bins(reference: Profile, target: Profile, column: str, bins: int) -> Binned:
    ref_stats, tgt_stats = reference.stats(column), target.stats(column)
    lo, hi = ref_stats.minimum, ref_stats.maximum
    if lo is None or hi is None:
        raise ValueError(f"column {column!r} has no numeric values in the reference")
    levels = [i / bins for i in range(1, bins)]
    inner = {lo, hi, *reference.quantiles(column, levels)}
    edges = [math.nextafter(lo, -math.inf), *sorted(inner)]
    # Right-closed bins: (-inf, below lo], (.., lo], (lo, q1], ..., (q_k, hi], (hi, inf).
    labels = [f"< {_fmt(lo)}", f"= {_fmt(lo)}"]
    labels += [f"({_fmt(a)}, {_fmt(b)}]" for a, b in itertools.pairwise(edges[1:])]
    labels.append(f"> {_fmt(hi)}")
    return Binned(
        labels=(NULL_BIN, *labels),
        reference=_with_nulls(ref_stats, reference.pmf(column, edges)),
        target=_with_nulls(tgt_stats, target.pmf(column, edges)),
    )


def _with_nulls(stats: ColumnStats, shares: Sequence[float]) -> tuple[float, ...]:
    present = 1.0 - stats.null_share
    return (stats.null_share, *(present * s for s in shares))


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


def presence_bins(reference: Profile, target: Profile, column: str) -> Binned:
    """Null against non-null only: for a column with no values on one side."""
    ref, tgt = reference.stats(column), target.stats(column)
    return Binned(
        labels=(NULL_BIN, "(value)"),
        reference=(ref.null_share, 1 - ref.null_share),
        target=(tgt.null_share, 1 - tgt.null_share),
    )


def compare_column(
    reference: Profile,
    target: Profile,
    column: str,
    policy: DriftPolicy,
    whylogs: WhylogsDrift | None = None,
) -> ColumnDrift:
    ref, tgt = reference.stats(column), target.stats(column)
    kinds = {ref.kind, tgt.kind}
    note = ""
    if ref.count == 0 or tgt.count == 0:
        return ColumnDrift(
            column, "empty", False, None, None, whylogs, ref.count, tgt.count,
            ref.null_share, tgt.null_share, None, "no rows on one side",
        )  # fmt: skip
    if kinds == {"numeric", "categorical"}:
        return ColumnDrift(
            column, "mixed", True, None, None, whylogs, ref.count, tgt.count, ref.null_share,
            tgt.null_share, None, f"type changed: {ref.kind} in reference, {tgt.kind} in target",
        )  # fmt: skip
    if ref.kind == "empty" or tgt.kind == "empty":
        kind = "empty" if kinds == {"empty"} else next(iter(kinds - {"empty"}))
        binned = presence_bins(reference, target, column)
        note = "no values on one side" if kind != "empty" else "no values"
    elif ref.kind == "numeric":
        kind = "numeric"
        binned = numeric_bins(reference, target, column, policy.bins)
    else:
        kind = "categorical"
        binned = categorical_bins(reference, target, column, policy.max_categories)
    score_psi = psi(binned.reference, binned.target)
    score_js = js_distance(binned.reference, binned.target)
    drifted = score_psi >= policy.psi_threshold or score_js >= policy.js_threshold
    return ColumnDrift(
        column=column,
        kind=kind,
        drifted=drifted,
        psi=score_psi,
        js=score_js,
        whylogs=whylogs,
        reference_count=ref.count,
        target_count=tgt.count,
        reference_null_share=ref.null_share,
        target_null_share=tgt.null_share,
        binned=binned,
        note=note,
    )


def compare(
    reference: Profile,
    target: Profile,
    policy: DriftPolicy | None = None,
    *,
    columns: Sequence[str] | None = None,
    on_column: Callable[[str], None] | None = None,
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
    results = []
    for column in common:
        results.append(compare_column(reference, target, column, policy, scores.get(column)))
        if on_column is not None:
            on_column(column)
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
    )
