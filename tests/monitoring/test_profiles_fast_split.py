"""Upgrade alarm and equality proof for monitoring/profiles.py's copy of whylogs' column split.

``profiles._split`` replaces whylogs' per-value ``apply`` calls with array operations: it
must still be written from the upstream function whylogs has (a digest of its source),
and it must split every column exactly as upstream does, so that the profiles are the same.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import whylogs
from whylogs.core.preprocessing import PreprocessedColumn

from monitoring import profiles
from monitoring.profiles import profile_frame

UPGRADE = f"whylogs {whylogs.__version__} changed PreprocessedColumn._pandas_split: "

rng = np.random.default_rng(7)
N = 3000


def _floats() -> np.ndarray:
    values = rng.normal(size=N)
    values[rng.random(N) < 0.1] = np.nan
    values[rng.random(N) < 0.01] = np.inf
    values[rng.random(N) < 0.01] = -np.inf
    return values


def _text(null: Any = None) -> list[Any]:
    return [null if rng.random() < 0.1 else str(rng.choice(["UA", "AA", "DL", "B6"]))
            for _ in range(N)]  # fmt: skip


def _mixed() -> list[Any]:
    pool: list[Any] = ["x", "yy", 1, 0, 7, 2.5, float("inf"), -1.0, True, False, None, np.nan,
                       np.float64(3.5), np.int64(4), np.bool_(True), np.bool_(False),
                       np.float32(1.25), np.int32(-3)]  # fmt: skip
    return [pool[i] for i in rng.integers(0, len(pool), N)]


# Every kind of column a frame can hand whylogs: the fast path's and the fallback's.
COLUMNS: dict[str, Callable[[], pd.Series]] = {
    "floats with NaN and inf": lambda: pd.Series(_floats()),
    "float32": lambda: pd.Series(_floats().astype(np.float32)),
    "floats without NaN": lambda: pd.Series(rng.normal(size=N)),
    "all NaN": lambda: pd.Series(np.full(N, np.nan)),
    "ints": lambda: pd.Series(rng.integers(-5, 2000, N)),
    "bools": lambda: pd.Series(rng.random(N) < 0.3),
    "strings with None": lambda: pd.Series(_text(), dtype=object),
    "strings with NaN": lambda: pd.Series(_text(np.nan), dtype=object),
    "strings only": lambda: pd.Series(_text("UA"), dtype=object),
    "all None": lambda: pd.Series([None] * N, dtype=object),
    "python bools with None": lambda: pd.Series(
        [None if rng.random() < 0.2 else bool(rng.random() < 0.5) for _ in range(N)], dtype=object
    ),
    "mixed plain types": lambda: pd.Series(_mixed(), dtype=object),
    "object floats and ints": lambda: pd.Series(
        [float(v) if v % 3 else int(v) for v in rng.integers(0, 100, N)], dtype=object
    ),
    "decimals (fallback)": lambda: pd.Series(
        [decimal.Decimal("1.5"), "a", None, 3] * (N // 4), dtype=object
    ),
    "lists and arrays (fallback)": lambda: pd.Series(
        [[1, 2], np.array([3.0]), "s", None, (1,)] * (N // 5), dtype=object
    ),
    "nullable Int64 (fallback)": lambda: pd.Series(pd.array([1, None, 3] * (N // 3), "Int64")),
    "empty float": lambda: pd.Series([], dtype="float64"),
    "empty object": lambda: pd.Series([], dtype=object),
    "non-default index": lambda: pd.Series(_text(), index=rng.permutation(N) + 10, dtype=object),
}

ATTRIBUTES = ("null_count", "nan_count", "inf_count", "bool_count", "bool_count_where_true", "len")


def _split(series: pd.Series, split: Callable[..., None]) -> PreprocessedColumn:
    column = PreprocessedColumn()
    column.original = series
    split(column, series)
    column.len = len(series)
    return column


def _same_series(ours: Any, theirs: Any) -> None:
    assert type(ours) is type(theirs)
    if theirs is None:
        return
    assert ours.dtype == theirs.dtype
    assert ours.index.equals(theirs.index)
    assert type(ours.index) is type(theirs.index)
    # repr: exact for floats (NaN included) and for the arrays a tensor column holds.
    assert [(type(v), repr(v)) for v in ours] == [(type(v), repr(v)) for v in theirs]


def _same_array(ours: Any, theirs: Any) -> None:
    assert type(ours) is type(theirs)
    if theirs is None:
        return
    assert ours.dtype == theirs.dtype
    assert np.array_equal(ours, theirs, equal_nan=ours.dtype.kind == "f")
    assert ours.tobytes() == theirs.tobytes()


def test_the_upstream_split_is_the_one_the_fast_path_was_written_from() -> None:
    assert profiles.upstream_split_sha256() == profiles.UPSTREAM_SPLIT_SHA256, (
        UPGRADE + "compare its source with monitoring/profiles.py's _split, update _split "
        "and UPSTREAM_SPLIT_SHA256"
    )


@pytest.mark.parametrize("name", list(COLUMNS))
def test_the_fast_split_splits_every_column_as_whylogs_does(name: str) -> None:
    series = COLUMNS[name]()
    theirs = _split(series, profiles.UPSTREAM_SPLIT)
    ours = _split(series, profiles._split)
    for attribute in ATTRIBUTES:
        mine, upstream = getattr(ours, attribute), getattr(theirs, attribute)
        assert mine == upstream and type(mine) is type(upstream), (name, attribute, mine, upstream)
    for attribute in ("ints", "floats", "strings"):
        _same_array(getattr(ours.numpy, attribute), getattr(theirs.numpy, attribute))
    for attribute in ("strings", "tensors", "objs"):
        _same_series(getattr(ours.pandas, attribute), getattr(theirs.pandas, attribute))
    assert ours.list == theirs.list


def _frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({name: make().iloc[:rows].reset_index(drop=True)
                         for name, make in COLUMNS.items() if "empty" not in name})  # fmt: skip


def _slow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profiles, "_split", profiles.UPSTREAM_SPLIT)


def test_a_small_profile_is_the_same_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under 200 values per column whylogs' quantile sketch keeps every value (no random
    # compaction), so each column's serialised view must be identical.
    frame = _frame(150)
    fast = profile_frame(frame)
    _slow(monkeypatch)
    slow = profile_frame(frame)
    assert fast.columns == slow.columns
    for column in fast.columns:
        ours, theirs = fast._view.get_column(column), slow._view.get_column(column)
        assert ours.serialize() == theirs.serialize(), column
    assert fast.histograms() == slow.histograms()
    assert fast.metadata == slow.metadata and fast.rows == slow.rows


def test_a_large_profile_is_the_same_but_for_the_sketch_randomness(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Above that the sketch compacts at random (profiling the same rows twice differs), so
    # it is compared by what it was given: count and extremes; everything else is exact.
    frame = _frame(N)
    fast = profile_frame(frame)
    _slow(monkeypatch)
    slow = profile_frame(frame)
    for column in fast.columns:
        ours, theirs = fast._view.get_column(column), slow._view.get_column(column)
        assert sorted(ours.get_metric_names()) == sorted(theirs.get_metric_names()), column
        for metric in ours.get_metric_names():
            if metric == "distribution":
                a, b = ours.get_metric(metric).kll.value, theirs.get_metric(metric).kll.value
                assert a.get_n() == b.get_n(), column
                if not a.is_empty():
                    assert (a.get_min_value(), a.get_max_value()) == (
                        b.get_min_value(),
                        b.get_max_value(),
                    ), column
                continue
            assert (
                ours.get_metric(metric).to_protobuf().SerializeToString()
                == theirs.get_metric(metric).to_protobuf().SerializeToString()
            ), (column, metric)
    assert fast.histograms() == slow.histograms()


def test_a_wrong_split_fails_these_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    # The equality checks above can fail: an off-by-one inf count is caught.
    def wrong(self: PreprocessedColumn, series: pd.Series, parse: bool = False) -> None:
        profiles._split(self, series, parse)
        self.inf_count += 1

    series = COLUMNS["floats with NaN and inf"]()
    assert _split(series, wrong).inf_count != _split(series, profiles.UPSTREAM_SPLIT).inf_count


def test_overlapping_profiles_on_two_threads_restore_whylogs_own_split_at_the_end() -> None:
    # The served-data writer and a retrain's reference profile overlap, and either may
    # end first: the upstream function must come back only when both have ended.
    from whylogs.core.preprocessing import PreprocessedColumn

    first, second = profiles.fast_split(), profiles.fast_split()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first to start ends first
    assert PreprocessedColumn._pandas_split is profiles._split
    second.__exit__(None, None, None)
    assert PreprocessedColumn._pandas_split is profiles.UPSTREAM_SPLIT
