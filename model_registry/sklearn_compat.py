"""The scikit-learn internals feastline relies on, read here and nowhere else.

Serving: the fast scorer (``serving/champion.py``) walks a fitted
``HistGradientBoostingClassifier``'s trees itself. scikit-learn keeps what that
needs private: the per-iteration tree predictors, the bin mapper's category
bitsets, the baseline and the loss, and the preprocessor it fits for categorical
columns given by name. ``tests/code/test_sklearn_compat.py`` fails, naming the
attribute, when an upgrade moves any of them; at run time the scorer falls back
to ``predict_proba`` (and says so in ``/model`` and ``feastline_fast_scoring``).

Training: ``HistGradientBoostingClassifier`` bins each feature before boosting. With
sample weights (the loop's recency weights) scikit-learn 1.9 finds each
feature's 255 bin edges by calling ``_weighted_percentile`` once per edge,
and every call sorts the column again: on a loop's retrain that binning was
half of the fit (27 s of a 48 s fit on 150k rows). ``_weighted_percentile``
takes the whole vector of percentile ranks in one call and computes each rank
with the same arithmetic on one sort, so the edges, and so the fitted model,
are bit for bit the same. :func:`fast_weighted_binning` swaps in
:func:`_find_binning_thresholds` below, the upstream function with that one
call changed, for the duration of a fit. ``tests/code/test_sklearn_compat.py``
fails when an upgrade changes the upstream function (it keeps a digest of its
source) or when the two give different edges.

Training, again: a retrain's permutation importance (monitoring weighs drift by it)
scores 61 shuffled copies of a 2,000-row sample. :func:`batched_permutation_importances`
shuffles them exactly as ``sklearn.inspection.permutation_importance`` does and scores
them in one call, which gives the same importances, bit for bit (the test compares
both, and keeps a digest of the upstream source).

In ``model_registry`` because both training and serving read it, and the registry
is where the two pipelines meet.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.ensemble._hist_gradient_boosting import binning
from sklearn.ensemble._hist_gradient_boosting.common import ALMOST_INF, X_DTYPE
from sklearn.utils.stats import _weighted_percentile

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


# -- training: weighted binning ------------------------------------------------------
# sha256 of ``inspect.getsource(binning._find_binning_thresholds)`` in the scikit-learn
# this copy was made from (1.9.1). Another digest: compare the two and update the copy.
UPSTREAM_SOURCE_SHA256 = "ab2729a3fe8c8742e42cc69268f51f6289202fe845f486d4e8d0e0a606c3fa51"

UPSTREAM = binning._find_binning_thresholds


def upstream_source_sha256() -> str:
    return hashlib.sha256(inspect.getsource(UPSTREAM).encode()).hexdigest()


def _find_binning_thresholds(
    col_data: np.ndarray, max_bins: int, sample_weight: np.ndarray | None = None
) -> Any:
    """scikit-learn 1.9.1's ``binning._find_binning_thresholds``, with the weighted
    percentiles computed in one call instead of one call per percentile."""
    missing_mask = np.isnan(col_data)
    any_missing = missing_mask.any()
    if any_missing:
        col_data = col_data[~missing_mask]
    if sample_weight is not None:
        if any_missing:
            sample_weight = sample_weight[~missing_mask]
        nnz_sw = sample_weight != 0
        col_data = col_data[nnz_sw]
        sample_weight = sample_weight[nnz_sw]
    sort_idx = np.argsort(col_data)
    col_data = col_data[sort_idx]
    if sample_weight is not None:
        sample_weight = sample_weight[sort_idx]
    distinct_values = np.unique(col_data).astype(X_DTYPE)
    if len(distinct_values) == 1:
        return np.asarray([])
    if len(distinct_values) <= max_bins:
        bin_thresholds = sliding_window_view(distinct_values, 2).mean(axis=1)
    elif sample_weight is None:
        percentiles = np.linspace(0, 100, num=max_bins + 1)
        percentiles = percentiles[1:-1]
        bin_thresholds = np.percentile(col_data, percentiles, method="averaged_inverted_cdf")
        assert bin_thresholds.shape[0] == max_bins - 1
    else:
        percentiles = np.linspace(0, 100, num=max_bins + 1)
        percentiles = percentiles[1:-1]
        # The one change: every percentile from one sort (upstream: one call each).
        bin_thresholds = np.asarray(
            _weighted_percentile(col_data, sample_weight, percentiles, average=True)
        )
        assert bin_thresholds.shape[0] == max_bins - 1
    unique_bin_values = np.unique(bin_thresholds)
    if unique_bin_values.shape[0] != bin_thresholds.shape[0]:
        bin_thresholds = unique_bin_values
    np.clip(bin_thresholds, a_min=None, a_max=ALMOST_INF, out=bin_thresholds)
    return bin_thresholds


@contextmanager
def fast_weighted_binning() -> Iterator[None]:
    """Fits inside bin weighted features with :func:`_find_binning_thresholds`.

    Not thread-safe against a concurrent fit that wants the upstream function, which
    gives the same edges anyway.
    """
    previous = binning._find_binning_thresholds
    binning._find_binning_thresholds = _find_binning_thresholds
    try:
        yield
    finally:
        binning._find_binning_thresholds = previous


# -- training: permutation importance ----------------------------------------------
# sha256 of the sources of ``permutation_importance`` and ``_calculate_permutation_scores``
# (sklearn/inspection/_permutation_importance.py) in the scikit-learn 1.9.1 that
# :func:`batched_permutation_importances` reproduces. Another digest: compare and update it.
PERMUTATION_SOURCE_SHA256 = "54039152925de3360713ed14dc36670dd2b22924293844d8f26af88db9f3ebd2"


def permutation_source_sha256() -> str:
    from sklearn.inspection import _permutation_importance as upstream

    sources = (
        inspect.getsource(upstream.permutation_importance),
        inspect.getsource(upstream._calculate_permutation_scores),
    )
    return hashlib.sha256("".join(sources).encode()).hexdigest()


def batched_permutation_importances(
    classifier: Any, matrix: np.ndarray, y: np.ndarray, *, n_repeats: int, random_state: int
) -> np.ndarray:
    """``permutation_importance(classifier, matrix, y, scoring="roc_auc", n_repeats=...,
    random_state=...).importances`` of scikit-learn 1.9.1, bit for bit, for a binary
    classifier with ``decision_function`` (the scorer's first choice).

    scikit-learn scores each shuffled copy with its own ``decision_function`` call: for a
    booster on a sample of 2,000 rows the per-tree overhead of 61 calls is most of the
    cost. Here every copy is shuffled exactly as upstream does (one seed drawn from
    ``random_state``, a fresh generator from it per column, the column shuffled again in
    place per repeat) and all copies are scored in one call: a row's score is the same
    sum of the same tree outputs whatever the rows scored with it.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.utils import check_random_state

    matrix = np.asarray(matrix)
    rows, columns = matrix.shape
    random_seed = check_random_state(random_state).randint(np.iinfo(np.int32).max + 1)
    baseline = roc_auc_score(y, classifier.decision_function(matrix))
    copies = []
    for column in range(columns):
        generator = check_random_state(random_seed)
        permuted = matrix.copy()
        shuffling = np.arange(rows)
        for _ in range(n_repeats):
            generator.shuffle(shuffling)
            permuted[:, column] = permuted[shuffling, column]
            copies.append(permuted.copy())
    scores = classifier.decision_function(np.concatenate(copies)).reshape(columns, n_repeats, rows)
    permuted_scores = np.array(
        [[roc_auc_score(y, scores[c, r]) for r in range(n_repeats)] for c in range(columns)]
    )
    return baseline - permuted_scores
