"""What the model is: its input columns and the scikit-learn Pipeline around the estimator.

The Pipeline holds scikit-learn classes only, so whoever loads it from the
registry (serving) needs scikit-learn, not this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

# Entity columns that are also good predictors. They are join keys, so they are
# not in the feature service's list, but every training row and every serving
# request carries them.
ENTITY_INPUTS = ["carrier", "origin"]

# Identifiers: a model keyed on them would memorise flights instead of learning delays.
NEVER_INPUTS = {"flight_id", "flight", "flight_number", "tailnum", "event_timestamp"}

# A few settings around the defaults. Early stopping is off on purpose: its
# holdout is a shuffled split, which would let the future inform the past.
DEFAULT_GRID: dict[str, list[Any]] = {
    "learning_rate": [0.05, 0.1],
    "max_leaf_nodes": [15, 31],
    "max_iter": [250],
    "l2_regularization": [1.0],
    "min_samples_leaf": [40],
}
SMALL_GRID: dict[str, list[Any]] = {
    "learning_rate": [0.1],
    "max_leaf_nodes": [15],
    "max_iter": [100],
    "l2_regularization": [1.0],
    "min_samples_leaf": [40],
}
GRIDS = {"default": DEFAULT_GRID, "small": SMALL_GRID}


@dataclass(frozen=True)
class ModelInputs:
    columns: list[str]
    categorical: list[str]


def model_inputs(frame: pd.DataFrame, features: list[str], label: str) -> ModelInputs:
    """The feature service's features plus the entity inputs; text columns are categorical."""
    columns = list(dict.fromkeys([*features, *ENTITY_INPUTS]))
    forbidden = sorted(set(columns) & (NEVER_INPUTS | {label}))
    if forbidden:
        raise ValueError(f"refusing identifier or label columns as model inputs: {forbidden}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"training set lacks model input columns: {missing}")
    categorical = [
        c
        for c in columns
        if pd.api.types.is_object_dtype(frame[c]) or pd.api.types.is_string_dtype(frame[c])
    ]
    return ModelInputs(columns=columns, categorical=categorical)


def build_pipeline(inputs: ModelInputs, params: dict[str, Any], seed: int) -> Pipeline:
    """Categoricals become ordinal codes that the booster splits on natively.

    Missing values stay missing: the booster learns where they go at each
    split, and "no previous landing" or "unknown plane" is itself informative,
    which an imputed mean would hide. Unseen categories at serving time are
    treated as missing rather than as an error.
    """
    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        encoded_missing_value=np.nan,
        dtype=np.float64,
    )
    prepare = ColumnTransformer(
        [("categorical", encoder, inputs.categorical)],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    # The booster sees NumPy, categoricals first (the ColumnTransformer's order),
    # with a positional mask. Given column *names* instead, it would wrap itself
    # in a second encoder that runs on every predict: milliseconds per call when
    # serving one flight.
    mask = [True] * len(inputs.categorical) + [False] * (
        len(inputs.columns) - len(inputs.categorical)
    )
    classifier = HistGradientBoostingClassifier(
        categorical_features=mask if inputs.categorical else None,
        early_stopping=False,
        random_state=seed,
        **params,
    )
    return Pipeline([("prepare", prepare), ("classifier", classifier)])


def predict_proba(pipeline: Pipeline, frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Late probability for each row, from the model's input columns only."""
    return pipeline.predict_proba(frame[columns])[:, 1]


def recency_weights(times: pd.Series, now: pd.Timestamp, half_life_days: float) -> np.ndarray:
    """Sample weights that halve every ``half_life_days`` of age before ``now``.

    For retraining on a long window: recent flights count most, old ones still
    teach the rare cases. Rows at or after ``now`` would be from the future.
    """
    if half_life_days <= 0:
        raise ValueError(f"half_life_days must be positive, got {half_life_days}")
    age_days = (now - times).dt.total_seconds().to_numpy() / 86_400
    if (age_days < 0).any():
        raise ValueError(f"{int((age_days < 0).sum())} rows are newer than {now.isoformat()}")
    return np.power(0.5, age_days / half_life_days)


def fit_pipeline(
    inputs: ModelInputs,
    params: dict[str, Any],
    seed: int,
    frame: pd.DataFrame,
    label: str,
    sample_weight: np.ndarray | None = None,
) -> Pipeline:
    """A fresh pipeline fitted on ``frame``; ``sample_weight`` goes to the booster."""
    pipeline = build_pipeline(inputs, params, seed)
    fit_params = {} if sample_weight is None else {"classifier__sample_weight": sample_weight}
    pipeline.fit(frame[inputs.columns], frame[label].to_numpy(), **fit_params)
    return pipeline
