"""Exact, deterministic histograms that ride inside each profile.

whylogs' KLL quantile sketch is randomised: profiling the same rows twice gives
slightly different quantiles, and the PSI computed from them moved between 1.67
and 1.72 on identical data. Drift scores here come from these histograms
instead, so the same data always gives the same scores, bit for bit.

Numbers are counted per *bucket*: the value with its mantissa truncated to
``MANTISSA_BITS`` bits (1,024 buckets per power of two, under 0.1% relative
width). Integers below 2,048 keep their exact value, pressure near 1,013 hPa
lands in 0.5 hPa buckets, a probability in 0.1%-wide ones. Buckets are the
same for every profile, so histograms merge by adding counts: a week merged
from seven days equals the week profiled at once. Text values are counted
exactly, up to ``MAX_CATEGORIES`` distinct values per column (the rest is
pooled as ``OTHER``, deterministically). Nulls, NaN and infinities count as
missing.

Nothing here imports whylogs; ``monitoring.profiles`` stores these in the
profile's metadata, so the ``.bin`` files stay whylogs' own format.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

HistogramKind = Literal["numeric", "categorical", "empty"]

MANTISSA_BITS = 11
MAX_CATEGORIES = 1000
OTHER = "(other)"


@dataclass(frozen=True)
class Histogram:
    """Counts per bucket (numbers, ascending) or per value (text), plus nulls."""

    kind: HistogramKind
    nulls: int
    keys: tuple[Any, ...]
    counts: tuple[int, ...]

    @property
    def present(self) -> int:
        return int(sum(self.counts))

    @property
    def total(self) -> int:
        return self.present + self.nulls

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "nulls": self.nulls, "keys": list(self.keys),
                "counts": list(self.counts)}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Histogram:
        kind = data["kind"]
        keys = tuple(float(k) for k in data["keys"]) if kind == "numeric" else tuple(data["keys"])
        return cls(kind, int(data["nulls"]), keys, tuple(int(c) for c in data["counts"]))


EMPTY = Histogram("empty", 0, (), ())


def bucket(values: np.ndarray) -> np.ndarray:
    """Each value truncated to ``MANTISSA_BITS`` significant bits (toward zero)."""
    mantissa, exponent = np.frexp(values)
    scale = float(2**MANTISSA_BITS)
    return np.ldexp(np.trunc(mantissa * scale) / scale, exponent)


def of_series(series: pd.Series) -> Histogram:
    """The histogram of one column (already given whylogs-compatible dtypes)."""
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        finite = values[np.isfinite(values)]
        nulls = int(len(values) - len(finite))
        if not len(finite):
            return Histogram("empty", nulls, (), ())
        keys, counts = np.unique(bucket(finite), return_counts=True)
        return Histogram("numeric", nulls, tuple(keys.tolist()), tuple(counts.tolist()))
    present = series.dropna()
    nulls = int(len(series) - len(present))
    if not len(present):
        return Histogram("empty", nulls, (), ())
    counts = present.astype(str).value_counts(sort=False)
    return _capped(nulls, dict(zip(counts.index.tolist(), counts.tolist(), strict=True)))


def of_frame(frame: pd.DataFrame) -> dict[str, Histogram]:
    return {str(name): of_series(frame[name]) for name in frame.columns}


def of_groups(frame: pd.DataFrame, keys: np.ndarray) -> dict[Any, dict[str, Histogram]]:
    """:func:`of_frame` of each group of rows sharing a key (sorted by key; rows with a
    missing key are left out), the same histograms as one call per group.

    Numbers are bucketed once per column and counted per group from a sorted copy: a
    frame split into a few hundred days took seconds as one ``of_frame`` per day.
    """
    present = pd.notna(keys)
    if not present.any():
        return {}
    uniques, codes = np.unique(keys[present], return_inverse=True)
    rows = np.flatnonzero(present)[np.argsort(codes, kind="stable")]
    bounds = np.searchsorted(np.sort(codes, kind="stable"), np.arange(len(uniques) + 1))
    groups: dict[Any, dict[str, Histogram]] = {key: {} for key in uniques.tolist()}
    for name in frame.columns:
        series = frame[name]
        numeric = pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(
            series.dtype
        )
        if numeric:
            values = pd.to_numeric(series, errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan
            )[rows]
            finite = np.isfinite(values)
            bucketed = np.where(finite, bucket(np.where(finite, values, 0.0)), np.nan)
        for key, first, last in zip(groups, bounds[:-1], bounds[1:], strict=True):
            if not numeric:
                groups[key][str(name)] = of_series(series.iloc[rows[first:last]])
                continue
            kept = bucketed[first:last][finite[first:last]]
            nulls = int(last - first - len(kept))
            if not len(kept):
                groups[key][str(name)] = Histogram("empty", nulls, (), ())
                continue
            unique, counts = np.unique(kept, return_counts=True)
            groups[key][str(name)] = Histogram(
                "numeric", nulls, tuple(unique.tolist()), tuple(counts.tolist())
            )
    return groups


def _capped(nulls: int, counts: Mapping[str, int]) -> Histogram:
    """Text counts sorted by value; beyond MAX_CATEGORIES values, the rarest are pooled."""
    items = dict(counts)
    if len(items) > MAX_CATEGORIES:
        ranked = sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = dict(ranked[: MAX_CATEGORIES - 1])
        kept[OTHER] = kept.get(OTHER, 0) + sum(c for _, c in ranked[MAX_CATEGORIES - 1 :])
        items = kept
    keys = sorted(items)
    return Histogram("categorical", nulls, tuple(keys), tuple(int(items[k]) for k in keys))


def merge(histograms: Iterable[Histogram]) -> Histogram:
    """Add counts bucket by bucket (exact, and independent of the order)."""
    items = [h for h in histograms]
    nulls = sum(h.nulls for h in items)
    filled = [h for h in items if h.kind != "empty"]
    if not filled:
        return Histogram("empty", nulls, (), ())
    if all(h.kind == "numeric" for h in filled):
        keys = np.concatenate([np.asarray(h.keys, dtype="float64") for h in filled])
        counts = np.concatenate([np.asarray(h.counts, dtype="int64") for h in filled])
        unique, inverse = np.unique(keys, return_inverse=True)
        summed = np.bincount(inverse, weights=counts, minlength=len(unique)).astype("int64")
        return Histogram("numeric", nulls, tuple(unique.tolist()), tuple(summed.tolist()))
    # Text on one side and numbers on the other: count both as text, so the
    # comparison still sees the values (and reports the type change).
    total: dict[str, int] = {}
    for h in filled:
        for key, count in zip(h.keys, h.counts, strict=True):
            name = _text(key) if h.kind == "numeric" else str(key)
            total[name] = total.get(name, 0) + count
    return _capped(nulls, total)


def _text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def merge_sets(sets: Iterable[Mapping[str, Histogram]]) -> dict[str, Histogram]:
    """Merge per-column histograms of several row sets (a column missing from one adds nothing)."""
    columns: dict[str, list[Histogram]] = {}
    for histograms in sets:
        for name, histogram in histograms.items():
            columns.setdefault(name, []).append(histogram)
    return {name: merge(parts) for name, parts in columns.items()}


def quantiles(histogram: Histogram, levels: Iterable[float]) -> list[float]:
    """The smallest bucket whose cumulative share reaches each level (numbers only)."""
    if histogram.kind != "numeric":
        raise ValueError("quantiles need a numeric histogram")
    keys = np.asarray(histogram.keys, dtype="float64")
    cumulative = np.cumsum(np.asarray(histogram.counts, dtype="int64"))
    total = cumulative[-1]
    # Integer arithmetic on the rank, so the result does not depend on rounding.
    out = []
    for level in levels:
        rank = max(1, int(np.ceil(level * total)))
        out.append(float(keys[int(np.searchsorted(cumulative, rank, side="left"))]))
    return out


def pmf(histogram: Histogram, edges: Iterable[float]) -> list[float]:
    """Share of non-null values in (-inf, e1], (e1, e2], ..., (ek, +inf)."""
    if histogram.kind != "numeric" or not histogram.present:
        edges = list(edges)
        return [0.0] * (len(edges) + 1)
    return shares(bin_counts(histogram, edges))


def bin_counts(histogram: Histogram, edges: Iterable[float]) -> np.ndarray:
    """How many non-null values fall in each of :func:`pmf`'s bins (a numeric histogram).
    Counts of several histograms add up to the counts of their merge."""
    keys = np.asarray(histogram.keys, dtype="float64")
    cumulative = np.concatenate([[0], np.cumsum(np.asarray(histogram.counts, dtype="int64"))])
    at = cumulative[np.searchsorted(keys, np.asarray(list(edges), dtype="float64"), side="right")]
    return np.diff(np.concatenate([[0], at, [cumulative[-1]]]))


def shares(counts: np.ndarray) -> list[float]:
    """Bin counts (not all zero) as :func:`pmf`'s shares."""
    return (counts / counts.sum()).tolist()
