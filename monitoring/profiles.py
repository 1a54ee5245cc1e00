"""Data profiles: the one place that knows about whylogs.

whylogs is unmaintained upstream, so every other module (and every caller
outside ``monitoring/``) works with ``Profile`` and the functions here and never
sees a whylogs type. Swapping the profiler means rewriting this module only.

A ``Profile`` is a mergeable summary of a table: per column a count, nulls,
a KLL quantile sketch (numbers), frequent items (strings and integers) and a
cardinality estimate. Files are whylogs' own ``.bin`` format, so whylogs tools
can read them too.

Each profile also carries exact, deterministic histograms of its columns
(``monitoring.histograms``) in its metadata: drift scores come from those, so
the same rows always give the same scores (whylogs' quantile sketch is
randomised). A profile written without them (by whylogs tools, or before they
existed) still compares, from the sketches.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pandas.core.dtypes.common as pdc
from whylogs.core import DatasetProfile, DatasetProfileView, DatasetSchema
from whylogs.core.configs import SummaryConfig
from whylogs.core.preprocessing import NumpyView, PreprocessedColumn
from whylogs.core.resolvers import StandardResolver
from whylogs.viz.drift.column_drift_algorithms import (
    ColumnDriftAlgorithm,
    Hellinger,
    calculate_drift_scores,
)

from feature_repo.atomic_io import write_with
from feature_repo.checksums import ChecksumMismatch, seal, unseal
from monitoring import histograms
from monitoring.histograms import Histogram

ColumnKind = Literal["numeric", "categorical", "empty"]

# Our own bookkeeping rides in the profile's string metadata. whylogs keeps no
# dataset row count (only per-column counts), and its merge keeps one side's
# metadata, so merge() below sums and spans these itself.
_ROWS = "feastline.rows"
_WINDOW_START = "feastline.window_start"
_WINDOW_END = "feastline.window_end"
_HISTOGRAMS = "feastline.histograms"
_INTERNAL = (_ROWS, _WINDOW_START, _WINDOW_END, _HISTOGRAMS)


class ProfileError(ValueError):
    """A profile file is missing, empty or unreadable. The message starts with the path."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


@dataclass(frozen=True)
class ColumnStats:
    count: int
    nulls: int
    kind: ColumnKind
    minimum: float | None
    maximum: float | None
    distinct: float | None

    @property
    def null_share(self) -> float:
        return self.nulls / self.count if self.count else 0.0


@dataclass(frozen=True)
class WhylogsDrift:
    """whylogs' own verdict for one column: KS, chi-square or Hellinger."""

    algorithm: str
    pvalue: float | None
    statistic: float | None
    category: str | None


class Profile:
    """An immutable, mergeable summary of a table (wraps a whylogs profile view)."""

    __slots__ = ("_histograms", "_view")

    def __init__(self, view: DatasetProfileView) -> None:
        self._view = view
        self._histograms: dict[str, Histogram] | None = None

    def __repr__(self) -> str:
        return f"Profile(rows={self.rows}, columns={len(self.columns)})"

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(sorted(self._view.get_columns()))

    @property
    def rows(self) -> int:
        meta = self._view.metadata or {}
        if _ROWS in meta:
            return int(meta[_ROWS])
        # A profile written by someone else: every logged row counts in every column.
        return max((self.stats(c).count for c in self.columns), default=0)

    @property
    def metadata(self) -> dict[str, str]:
        meta = self._view.metadata or {}
        return {k: v for k, v in meta.items() if k not in _INTERNAL}

    @property
    def window(self) -> tuple[datetime | None, datetime | None]:
        meta = self._view.metadata or {}
        return _parse_time(meta.get(_WINDOW_START)), _parse_time(meta.get(_WINDOW_END))

    @property
    def has_histograms(self) -> bool:
        return _HISTOGRAMS in (self._view.metadata or {})

    def histograms(self) -> dict[str, Histogram]:
        """Exact per-column histograms (empty for a profile written without them)."""
        if self._histograms is None:
            text = (self._view.metadata or {}).get(_HISTOGRAMS)
            parsed = json.loads(text) if text else {}
            self._histograms = {k: Histogram.from_json(v) for k, v in parsed.items()}
        return self._histograms

    def histogram(self, column: str) -> Histogram | None:
        return self.histograms().get(column)

    def stats(self, column: str) -> ColumnStats:
        view = self._column(column)
        counts = view.get_metric("counts")
        count = int(counts.n.value) if counts else 0
        nulls = int(counts.null.value) if counts else 0
        kll = _kll(view)
        cardinality = view.get_metric("cardinality")
        distinct = float(cardinality.hll.value.get_estimate()) if cardinality else None
        if kll is not None:
            return ColumnStats(
                count, nulls, "numeric", kll.get_min_value(), kll.get_max_value(), distinct
            )
        kind: ColumnKind = "categorical" if self.frequent_items(column) else "empty"
        return ColumnStats(count, nulls, kind, None, None, distinct)

    def quantiles(self, column: str, levels: Sequence[float]) -> list[float]:
        kll = _kll(self._column(column))
        if kll is None:
            raise ValueError(f"column {column!r} has no numeric values")
        return [float(q) for q in kll.get_quantiles(list(levels))]

    def pmf(self, column: str, split_points: Sequence[float]) -> list[float]:
        """Share of non-null values in (-inf, s1], (s1, s2], ..., (sk, +inf).

        Right-closed bins put each repeated value (0 mm of rain, 2 engines) in one
        bin with nothing else, which keeps discrete columns comparable.
        """
        kll = _kll(self._column(column))
        if kll is None:
            raise ValueError(f"column {column!r} has no numeric values")
        return [float(p) for p in kll.get_pmf(list(split_points), True)]

    def frequent_items(self, column: str) -> list[tuple[str, int]]:
        """(value, estimated count) of the most frequent values, most frequent first."""
        metric = self._column(column).get_metric("frequent_items")
        if metric is None or metric.frequent_strings.value.is_empty():
            return []
        items = metric.to_summary_dict(SummaryConfig())["frequent_strings"]
        return [(str(item.value), int(item.est)) for item in items]

    def merge(self, other: Profile) -> Profile:
        return merge([self, other])

    def _column(self, column: str) -> Any:
        view = self._view.get_column(column)
        if view is None:
            raise KeyError(f"column {column!r} is not in this profile")
        return view


def _kll(column_view: Any) -> Any | None:
    metric = column_view.get_metric("distribution")
    if metric is None or metric.kll.value.is_empty():
        return None
    return metric.kll.value


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """Give whylogs only dtypes it handles under NumPy 2.

    whylogs 1.6.4 touches ``np.unicode_`` (gone in NumPy 2) when it meets a
    dtype that is neither plain numeric nor ``object``, e.g. datetimes or pandas'
    ``string`` dtype. Timestamps are dropped: they move by construction, so
    their "drift" says nothing. The profile's window records the time instead.
    """
    out: dict[str, pd.Series] = {}
    for name in frame.columns:
        series = frame[name]
        dtype = series.dtype
        if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
            continue
        if isinstance(dtype, pd.PeriodDtype | pd.IntervalDtype):
            continue
        if pd.api.types.is_bool_dtype(dtype) and not isinstance(dtype, pd.BooleanDtype):
            out[str(name)] = series
        elif isinstance(dtype, pd.CategoricalDtype | pd.StringDtype) or (
            pd.api.types.is_object_dtype(dtype)
        ):
            out[str(name)] = series.astype(object).where(series.notna(), None)
        elif pd.api.types.is_extension_array_dtype(dtype) and pd.api.types.is_numeric_dtype(dtype):
            out[str(name)] = series.astype("float64")
        elif pd.api.types.is_numeric_dtype(dtype):
            out[str(name)] = series
        else:
            out[str(name)] = series.astype(object).where(series.notna(), None)
    return pd.DataFrame(out, index=frame.index)


# -- whylogs' column split, without its per-value checks --------------------------------
# whylogs splits each column into floats, ints, strings, ... with up to six per-value
# ``Series.apply`` calls (``PreprocessedColumn._pandas_split``): on a retrain's reference
# (90 days of inputs) that was nine tenths of the profiling. ``_split`` below is that
# function with the same results from whole-array operations, for the columns
# ``_prepare`` hands over: NumPy floats, and object columns whose values are all of a
# few plain types. Anything else goes to whylogs' own function. ``tests/monitoring/
# test_profiles_fast_split.py`` fails when an upgrade changes the upstream function
# (a digest of its source) or when the two split a column differently.

# sha256 of ``inspect.getsource(PreprocessedColumn._pandas_split)`` in whylogs 1.6.4, the
# version ``_split`` was written from. Another digest: compare the two and update ``_split``.
UPSTREAM_SPLIT_SHA256 = "fea6dd2fddb12a07790d47bcd4572354723cb9c3805e87a084ddc7ab0ef8ae93"
UPSTREAM_SPLIT = PreprocessedColumn._pandas_split

# Value types for which whylogs' checks (is_float, is_decimal, is_bool, is_number,
# is_integer, isinstance str, tensor) depend on the type alone, never on the value.
_PLAIN_TYPES = frozenset(
    {str, int, float, bool, np.float64, np.float32, np.int64, np.int32, np.bool_}
)


def upstream_split_sha256() -> str:
    return hashlib.sha256(inspect.getsource(UPSTREAM_SPLIT).encode()).hexdigest()


def _split(self: PreprocessedColumn, series: pd.Series, parse_numeric_string: bool = False) -> None:
    """whylogs 1.6.4's ``PreprocessedColumn._pandas_split``, the per-value ``apply``
    calls replaced by array operations; the same attributes, of the same types."""
    dtype = series.dtype if series is not None else None
    if parse_numeric_string or not isinstance(dtype, np.dtype) or dtype.kind not in "fO":
        UPSTREAM_SPLIT(self, series, parse_numeric_string)  # ints, bools, extension dtypes
        return
    null_series = series[series.isnull()]
    non_null_series = series[series.notnull()]
    self.null_count = len(null_series)
    if dtype.kind == "f":
        # A NumPy float column's nulls are all NaN, which is_number counts as a number.
        if series.hasnans:
            self.nan_count = len(null_series)
        floats = non_null_series.astype(float)
        self.inf_count = int(np.isinf(floats.to_numpy()).sum())
        self.numpy.floats = floats.to_numpy()
        return
    values = non_null_series.to_numpy()
    types = list(map(type, values))
    kinds = dict.fromkeys(types)
    if not set(kinds) <= _PLAIN_TYPES:
        UPSTREAM_SPLIT(self, series, parse_numeric_string)  # Decimal, lists, arrays, objects
        return
    if series.hasnans:
        na_number_mask = null_series.apply(lambda x: pdc.is_number(x))
        if not null_series[na_number_mask].empty:
            nan_floats = null_series[na_number_mask].astype(float)
            self.nan_count = nan_floats.isna().sum()
    if non_null_series.empty:
        return
    # Upstream's predicates, on one value of each type (they depend on the type alone).
    checks = {}
    for kind in kinds:
        x = values[types.index(kind)]
        checks[kind] = (
            pdc.is_float(x) or pdc.is_decimal(x),
            pdc.is_bool(x),
            pdc.is_number(x) and pdc.is_integer(x) and not pdc.is_bool(x),
            isinstance(x, str),
        )
    if len(kinds) == 1:
        flags = np.broadcast_to(np.array(next(iter(checks.values()))), (len(values), 4))
    else:
        flags = np.array([checks[kind] for kind in types], dtype=bool).reshape(-1, 4)
    float_mask, bool_mask, int_mask, str_mask = (
        np.ascontiguousarray(flags[:, i]) for i in range(4)
    )
    bool_mask_where_true = bool_mask.copy()
    if bool_mask.any():
        bool_mask_where_true[bool_mask] = [bool(x) for x in values[bool_mask]]
    tensor_mask = np.zeros(len(values), dtype=bool)  # no plain type is a list or an array

    floats = non_null_series[float_mask]
    if non_null_series[int_mask].empty:
        ints = pd.Series(dtype=int)
    else:
        ints = non_null_series[int_mask].astype(int)
    bool_count = non_null_series[bool_mask].count()
    bool_count_where_true = non_null_series[bool_mask_where_true].count()
    strings = non_null_series[str_mask]
    tensors = pd.Series([], dtype="object")
    objs = non_null_series[~(float_mask | str_mask | int_mask | bool_mask | tensor_mask)]
    if not floats.empty:
        floats = floats.astype(float)
        self.inf_count = int(np.isinf(floats.to_numpy()).sum())
    self.numpy = NumpyView(floats=floats.to_numpy(), ints=ints.to_numpy())
    self.pandas.strings = strings
    self.pandas.tensors = tensors
    self.pandas.objs = objs
    self.bool_count = bool_count
    self.bool_count_where_true = bool_count_where_true


# Profiles are built on several threads at once (the served-data writer beside a
# retrain's reference): the swap is counted, so the upstream function comes back when
# the last of them ends, never while one is still inside.
_swap_lock = threading.Lock()
_swap_depth = 0


@contextmanager
def fast_split() -> Iterator[None]:
    """whylogs splits columns with :func:`_split` while any caller is inside."""
    global _swap_depth
    with _swap_lock:
        if _swap_depth == 0:
            PreprocessedColumn._pandas_split = _split
        _swap_depth += 1
    try:
        yield
    finally:
        with _swap_lock:
            _swap_depth -= 1
            if _swap_depth == 0:
                PreprocessedColumn._pandas_split = UPSTREAM_SPLIT


def histograms_of(frame: pd.DataFrame) -> dict[str, Histogram]:
    """The exact histograms a profile of ``frame`` carries (for calibration)."""
    return histograms.of_frame(_prepare(frame))


def grouped_histograms(frame: pd.DataFrame, keys: Any) -> dict[Any, dict[str, Histogram]]:
    """:func:`histograms_of` each group of rows sharing a key, by key (for calibration)."""
    return histograms.of_groups(_prepare(frame), np.asarray(keys))


class ProfileBuilder:
    """Accumulates batches into one profile in place.

    One long-lived builder per interval tracks every batch into the same
    sketches. A fresh profile per batch would pay the column set-up again (a
    quarter more CPU at one row per call, see bench/profiling.py) and then a
    merge of every sketch. Not thread-safe: one writer thread owns it.
    """

    def __init__(
        self,
        *,
        metadata: Mapping[str, str] | None = None,
        window: tuple[datetime, datetime] | None = None,
        base: Profile | None = None,
    ) -> None:
        # The standard resolver gives the metrics drift needs (counts, types,
        # quantiles, cardinality, frequent items) without the declarative
        # default's unicode-range metric, whose set-up dominates small batches.
        self._profile = DatasetProfile(schema=DatasetSchema(resolvers=StandardResolver()))
        self._metadata = {str(k): str(v) for k, v in (metadata or {}).items()}
        self._window = window
        self._base = base
        self._rows = 0
        self._histograms: dict[str, Histogram] = {}

    @property
    def rows(self) -> int:
        return self._rows + (self._base.rows if self._base else 0)

    def set_window(self, start: datetime, end: datetime) -> None:
        """The time span the rows cover, when it is only known after adding them."""
        self._window = (start, end)

    def add(self, frame: pd.DataFrame | Sequence[Mapping[str, Any]]) -> None:
        if not isinstance(frame, pd.DataFrame):
            frame = pd.DataFrame.from_records(list(frame))
        prepared = _prepare(frame)
        if len(prepared.columns) and len(prepared):
            with fast_split():
                self._profile.track(pandas=prepared)
            self._histograms = histograms.merge_sets(
                [self._histograms, histograms.of_frame(prepared)]
            )
        self._rows += len(frame)

    def snapshot(self) -> Profile:
        """An independent Profile of everything added so far."""
        # The live view shares sketches with the builder; a serialised copy stays fixed.
        return Profile(DatasetProfileView.deserialize(to_bytes(self._current())))

    def write(self, path: Path) -> Path:
        """Write what was added so far, atomically, without copying the sketches first."""
        payload = seal(to_bytes(self._current()))
        write_with(Path(path), lambda tmp: tmp.write_bytes(payload))
        return Path(path)

    def _current(self) -> Profile:
        view = self._profile.view()
        meta = dict(self._metadata)
        meta[_ROWS] = str(self._rows)
        meta[_HISTOGRAMS] = _histograms_text(self._histograms)
        if self._window is not None:
            meta[_WINDOW_START] = _utc(self._window[0]).isoformat()
            meta[_WINDOW_END] = _utc(self._window[1]).isoformat()
        own = Profile(
            DatasetProfileView(
                columns=view.get_columns(),
                dataset_timestamp=_utc(self._window[0]) if self._window else view.dataset_timestamp,
                creation_timestamp=view.creation_timestamp,
                metadata=meta,
            )
        )
        return merge([self._base, own]) if self._base is not None else own


def profile_frame(
    frame: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[str] | None = None,
    metadata: Mapping[str, str] | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> Profile:
    """Profile a table. ``columns`` selects (and requires) columns; ``window`` is
    the time span the rows cover, kept so that alerts can name it."""
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame.from_records(list(frame))
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"cannot profile: columns not in the frame: {', '.join(missing)}")
        frame = frame[list(columns)]
    builder = ProfileBuilder(metadata=metadata, window=window)
    builder.add(frame)
    # The builder goes out of scope here, so its live sketches need no copy.
    return builder._current()


def _histograms_text(columns: Mapping[str, Histogram]) -> str:
    return json.dumps({k: h.to_json() for k, h in sorted(columns.items())}, separators=(",", ":"))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def merge(profiles: Iterable[Profile]) -> Profile:
    """Merge profiles of disjoint row sets (e.g. hourly files into a week)."""
    items = list(profiles)
    if not items:
        raise ValueError("merge() needs at least one profile")
    if len(items) == 1:
        return items[0]
    columns: dict[str, Any] = {}
    for item in items:
        for name, column in item._view.get_columns().items():
            columns[name] = column if name not in columns else columns[name].merge(column)
    metadata: dict[str, str] = {}
    for item in items:
        metadata.update(item.metadata)
    metadata[_ROWS] = str(sum(item.rows for item in items))
    # Exact histograms survive a merge only when every part has them.
    if all(item.has_histograms for item in items):
        merged = histograms.merge_sets(item.histograms() for item in items)
        metadata[_HISTOGRAMS] = _histograms_text(merged)
    starts = [s for s in (item.window[0] for item in items) if s is not None]
    ends = [e for e in (item.window[1] for item in items) if e is not None]
    if starts:
        metadata[_WINDOW_START] = min(starts).isoformat()
    if ends:
        metadata[_WINDOW_END] = max(ends).isoformat()
    stamps = [i._view.dataset_timestamp for i in items if i._view.dataset_timestamp]
    created = [i._view.creation_timestamp for i in items if i._view.creation_timestamp]
    return Profile(
        DatasetProfileView(
            columns=columns,
            dataset_timestamp=min(stamps) if stamps else None,
            creation_timestamp=min(created) if created else None,
            metadata=metadata,
        )
    )


def to_bytes(profile: Profile) -> bytes:
    return profile._view.serialize()


def write_profile(profile: Profile, path: Path) -> Path:
    """Write a whylogs ``.bin`` atomically: readers see the old file or the new one."""
    payload = seal(to_bytes(profile))  # a sha256 trailer, checked by read_profile
    write_with(Path(path), lambda tmp: tmp.write_bytes(payload))
    return Path(path)


def read_profile(path: Path | str) -> Profile:
    """Read a ``.bin``; a missing, empty or corrupt file raises ProfileError naming it."""
    path = Path(path)
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise ProfileError(path, "profile file not found") from None
    except OSError as err:
        raise ProfileError(path, f"cannot read the profile: {err.strerror or err}") from None
    if not payload:
        raise ProfileError(path, "profile file is empty")
    try:
        payload, _ = unseal(payload)
    except ChecksumMismatch as err:
        raise ProfileError(path, f"corrupt profile: {err}") from None
    try:
        view = DatasetProfileView.deserialize(payload)
    # whylogs raises a mix of its own, protobuf, IO and index errors on garbage.
    except Exception as err:
        raise ProfileError(path, f"not a readable whylogs profile ({err})") from None
    return Profile(view)


def profile_files(paths: Iterable[Path | str]) -> list[Path]:
    """Expand folders to the ``.bin`` files inside (temporary files are hidden and skipped)."""
    files: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            found = sorted(p for p in entry.glob("*.bin") if not p.name.startswith("."))
            if not found:
                raise ProfileError(entry, "folder holds no .bin profiles")
            files.extend(found)
        else:
            files.append(entry)
    return files


def read_profiles(paths: Iterable[Path | str]) -> Profile:
    """Read files (or folders of files) and merge them into one profile."""
    files = profile_files(paths)
    if not files:
        raise ValueError("no profile files given")
    return merge(read_profile(p) for p in files)


def whylogs_drift(
    reference: Profile, target: Profile, hellinger_columns: Iterable[str] = ()
) -> dict[str, WhylogsDrift | None]:
    """whylogs' drift score per common column: KS for numbers, chi-square for
    categories, Hellinger for the columns named. None when whylogs cannot score."""
    drift_map: dict[str, ColumnDriftAlgorithm] = {c: Hellinger() for c in hellinger_columns}
    with warnings.catch_warnings():
        # whylogs warns per column when it cannot score; the caller reports None.
        warnings.simplefilter("ignore")
        scores = calculate_drift_scores(
            target_view=target._view,
            reference_view=reference._view,
            drift_map=drift_map or None,
            with_thresholds=True,
        )
    return {
        name: None
        if score is None
        else WhylogsDrift(
            algorithm=str(score["algorithm"]),
            pvalue=_finite(score.get("pvalue")),
            statistic=_finite(score.get("statistic")),
            category=score.get("drift_category"),
        )
        for name, score in scores.items()
    }


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
