"""The scikit-learn internals serving relies on, read here and nowhere else.

The fast scorer (``serving/champion.py``) walks a fitted
``HistGradientBoostingClassifier``'s trees itself. scikit-learn keeps what that
needs private: the per-iteration tree predictors, the bin mapper's category
bitsets, the baseline and the loss, and the preprocessor it fits for categorical
columns given by name. ``tests/code/test_sklearn_compat.py`` fails, naming the
attribute, when an upgrade moves any of them; at run time the scorer falls back
to ``predict_proba`` (and says so in ``/model`` and ``feastline_fast_scoring``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# The fields of TreePredictor.nodes (sklearn/ensemble/_hist_gradient_boosting/common.pyx,
# PREDICTOR_RECORD_DTYPE) that the fast scorer reads.
NODE_FIELDS = (
    "value",
    "feature_idx",
    "num_threshold",
    "missing_go_to_left",
    "left",
    "right",
    "is_leaf",
    "is_categorical",
    "bitset_idx",
)


class UnexpectedInternals(Exception):
    """The fitted classifier does not look the way this adapter was written for."""


@dataclass(frozen=True)
class BoostedTrees:
    """What a binary HistGradientBoostingClassifier scores with.

    ``trees``: one TreePredictor per iteration, each with ``nodes`` (a structured
    array with :data:`NODE_FIELDS`), ``raw_left_cat_bitsets`` and
    ``predict(X, known_bitsets, feature_slot, n_threads)``; ``loss.predict_proba``
    maps the summed raw score to probabilities.
    """

    trees: list[Any]
    known_bitsets: np.ndarray
    feature_slot: np.ndarray
    baseline: float
    loss: Any


def boosted_trees(classifier: Any) -> BoostedTrees:
    """The private state of a fitted binary HistGradientBoostingClassifier."""
    try:
        trees = [per_iteration[0] for per_iteration in classifier._predictors]
        known_bitsets, feature_slot = classifier._bin_mapper.make_known_categories_bitsets()
        baseline = float(np.ravel(classifier._baseline_prediction)[0])
        loss = classifier._loss
        missing = [f for f in NODE_FIELDS if trees and f not in (trees[0].nodes.dtype.names or ())]
    except AttributeError as err:
        raise UnexpectedInternals(
            f"HistGradientBoostingClassifier internals changed: {err}"
        ) from None
    if missing:
        raise UnexpectedInternals(f"TreePredictor.nodes lacks fields {missing}")
    return BoostedTrees(trees, known_bitsets, feature_slot, baseline, loss)


def inner_preprocessor(classifier: Any) -> Any | None:
    """The ColumnTransformer a HistGradientBoostingClassifier fits for categorical columns
    given by name (``categorical_features="from_dtype"`` or names), else None."""
    return getattr(classifier, "_preprocessor", None)
