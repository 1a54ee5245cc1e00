"""Upgrade alarms for model_registry/sklearn_compat.py.

The HistGradientBoosting internals the fast scorer reads: a failure names what
scikit-learn changed; until it is fixed the service scores with predict_proba (slower,
still correct). The copy of the binning function training uses: it must be the upstream
one but for the single vectorised call, and give the very same bin edges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting import binning

from model_registry import sklearn_compat
from model_registry.sklearn_compat import (
    NODE_FIELDS,
    UnexpectedInternals,
    boosted_trees,
    inner_preprocessor,
)

UPGRADE = f"scikit-learn {sklearn.__version__} changed HistGradientBoostingClassifier: "


def fitted(categorical_by_name: bool) -> tuple[HistGradientBoostingClassifier, pd.DataFrame]:
    rng = np.random.default_rng(0)
    data = pd.DataFrame(
        {
            "carrier": rng.integers(0, 5, 2000).astype(float),
            "delay": rng.exponential(20, 2000),
        }
    )
    data.loc[rng.random(2000) < 0.1, "delay"] = np.nan
    label = (data["delay"].fillna(0) + 10 * (data["carrier"] == 1) > 25).to_numpy()
    if categorical_by_name:
        data["carrier"] = data["carrier"].astype("category")
        features: object = "from_dtype"
    else:
        features = [True, False]
    classifier = HistGradientBoostingClassifier(
        categorical_features=features, max_iter=20, random_state=0
    )
    # A DataFrame with a categorical dtype, or NumPy with a mask (as the champion's Pipeline).
    return classifier.fit(data if categorical_by_name else data.to_numpy(), label), data


def test_the_trees_score_as_predict_proba_does() -> None:
    classifier, data = fitted(categorical_by_name=False)
    boosted = boosted_trees(classifier)
    assert boosted.trees, UPGRADE + "_predictors holds no trees"
    for field in NODE_FIELDS:
        assert field in (boosted.trees[0].nodes.dtype.names or ()), UPGRADE + f"nodes lack {field}"
    matrix = np.ascontiguousarray(data.to_numpy(dtype=np.float64))
    raw = np.full(len(matrix), boosted.baseline)
    for tree in boosted.trees:
        raw += tree.predict(matrix, boosted.known_bitsets, boosted.feature_slot, 1)
    ours = boosted.loss.predict_proba(raw.reshape(-1, 1))[:, 1]
    theirs = classifier.predict_proba(matrix)[:, 1]
    assert np.max(np.abs(ours - theirs)) <= 1e-12, (
        UPGRADE + "baseline + sum of TreePredictor.predict through _loss no longer "
        "reproduces predict_proba"
    )


@pytest.mark.parametrize("categorical_by_name", [False, True])
def test_categorical_columns_get_an_inner_preprocessor(categorical_by_name: bool) -> None:
    classifier, _ = fitted(categorical_by_name)
    inner = inner_preprocessor(classifier)
    assert inner is not None, UPGRADE + "no _preprocessor for categorical columns"
    assert hasattr(inner, "transformers_"), UPGRADE + "_preprocessor is not a ColumnTransformer"


def test_no_categorical_columns_no_inner_preprocessor() -> None:
    _, data = fitted(categorical_by_name=False)
    numeric = HistGradientBoostingClassifier(categorical_features=None, max_iter=5)
    numeric.fit(data.to_numpy(), data["delay"].fillna(0).to_numpy() > 20)
    assert inner_preprocessor(numeric) is None, UPGRADE + "_preprocessor without categoricals"


def test_missing_internals_are_named() -> None:
    classifier, _ = fitted(categorical_by_name=False)
    del classifier._bin_mapper
    with pytest.raises(UnexpectedInternals, match="_bin_mapper"):
        boosted_trees(classifier)


def test_the_upstream_function_is_the_one_copied() -> None:
    assert sklearn_compat.upstream_source_sha256() == sklearn_compat.UPSTREAM_SOURCE_SHA256, (
        "sklearn's _find_binning_thresholds changed: compare it with the copy in "
        "model_registry/sklearn_compat.py, update the copy and the digest"
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


def test_the_permutation_importance_reproduced_is_the_one_upstream_has() -> None:
    assert sklearn_compat.permutation_source_sha256() == sklearn_compat.PERMUTATION_SOURCE_SHA256, (
        "sklearn's permutation_importance or _calculate_permutation_scores changed: compare "
        "them with batched_permutation_importances in model_registry/sklearn_compat.py, "
        "update it and the digest"
    )


@pytest.mark.parametrize(("repeats", "seed"), [(2, 0), (3, 11)])
def test_batched_permutation_importances_are_upstreams_bit_for_bit(repeats: int, seed: int) -> None:
    from sklearn.inspection import permutation_importance

    classifier, data = fitted(categorical_by_name=False)
    rng = np.random.default_rng(5)
    matrix = np.column_stack([data.to_numpy(), rng.normal(size=len(data))])  # an unused input
    label = (data["delay"].fillna(0) + 10 * (data["carrier"] == 1) > 25).to_numpy()
    classifier = HistGradientBoostingClassifier(
        categorical_features=[True, False, False], max_iter=20, random_state=0
    ).fit(matrix, label)
    sample, y = matrix[:700], label[:700]
    expected = permutation_importance(
        classifier, sample, y, scoring="roc_auc", n_repeats=repeats, random_state=seed
    ).importances
    got = sklearn_compat.batched_permutation_importances(
        classifier, sample, y, n_repeats=repeats, random_state=seed
    )
    assert got.shape == expected.shape == (3, repeats)
    assert got.tobytes() == expected.tobytes(), (got, expected)
    assert np.count_nonzero(got) > 0
