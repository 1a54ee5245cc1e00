"""Upgrade alarms for training/sklearn_compat.py: its copy of the binning function must be
the upstream one but for the single vectorised call, and give the very same bin edges."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting import binning

from training import sklearn_compat


def test_the_upstream_function_is_the_one_copied() -> None:
    assert sklearn_compat.upstream_source_sha256() == sklearn_compat.UPSTREAM_SOURCE_SHA256, (
        "sklearn's _find_binning_thresholds changed: compare it with the copy in "
        "training/sklearn_compat.py, update the copy and the digest"
    )


def test_the_same_edges_with_and_without_weights() -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    columns = {
        "continuous": rng.normal(size=n),
        "ties": rng.integers(0, 2_000, size=n).astype(np.float64),
        "few": rng.integers(0, 12, size=n).astype(np.float64),
        "missing": np.where(rng.random(n) < 0.2, np.nan, rng.exponential(size=n)),
    }
    weights = np.power(0.5, rng.uniform(0, 200, size=n) / 90)
    weights[:50] = 0.0  # zero weights are dropped before the edges are found
    for name, column in columns.items():
        for sample_weight in (None, weights):
            expected = sklearn_compat.UPSTREAM(column, 255, sample_weight)
            got = sklearn_compat._find_binning_thresholds(column, 255, sample_weight)
            assert np.array_equal(expected, got), name


def test_a_weighted_fit_is_unchanged_and_the_patch_is_undone() -> None:
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(size=5_000), "b": rng.integers(0, 900, size=5_000)})
    y = (X["a"] + rng.normal(size=5_000) > 0.5).astype(int)
    weights = np.power(0.5, rng.uniform(0, 100, size=5_000) / 30)

    def fitted() -> np.ndarray:
        model = HistGradientBoostingClassifier(max_iter=20, random_state=0, early_stopping=False)
        return model.fit(X, y, sample_weight=weights).predict_proba(X)[:, 1]

    upstream = fitted()
    with sklearn_compat.fast_weighted_binning():
        assert binning._find_binning_thresholds is sklearn_compat._find_binning_thresholds
        patched = fitted()
    assert binning._find_binning_thresholds is sklearn_compat.UPSTREAM
    assert np.array_equal(upstream, patched)
