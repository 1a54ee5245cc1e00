"""Upgrade alarms for serving/sklearn_compat.py: the HistGradientBoosting internals the
fast scorer reads. A failure names what scikit-learn changed; until it is fixed the
service scores with predict_proba (slower, still correct)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier

from serving.sklearn_compat import (
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
