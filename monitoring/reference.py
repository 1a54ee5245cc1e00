"""The reference profile that training writes next to each model version.

It profiles what the model saw: the training set's features, the model's
predicted probability and the label. Served profiles should log the features
and the probability under the same column names, so that drift on the
prediction shows up; the label only exists in the reference.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from monitoring.drift import IMPORTANCE_KEY
from monitoring.profiles import profile_frame, write_profile

# The column name served profiles should use for the predicted probability.
PREDICTION_COLUMN = "probability"


def write_reference_profile(
    frame: pd.DataFrame,
    features: Sequence[str],
    label_col: str,
    prediction_col: str | None,
    out_path: Path,
    *,
    time_col: str | None = "event_timestamp",
    model_tag: str | None = None,
    metadata: Mapping[str, str] | None = None,
    importance: Mapping[str, float] | None = None,
) -> Path:
    """Profile features, prediction and label of ``frame`` into ``out_path`` (atomic).

    ``time_col``, when present, gives the profile its window (first and last
    prediction time). ``importance`` (the model's permutation importance per
    input) lets drift weigh features by what they matter to the model. Returns
    the path, for the model's registry metadata.
    """
    columns = list(dict.fromkeys([*features, *(c for c in (prediction_col, label_col) if c)]))
    meta = {
        "role": "reference",
        "label_column": label_col,
        "prediction_column": prediction_col or "",
        **({"model_tag": model_tag} if model_tag else {}),
        **({IMPORTANCE_KEY: json.dumps(dict(importance), sort_keys=True)} if importance else {}),
        **(metadata or {}),
    }
    window = None
    if time_col and time_col in frame.columns and len(frame):
        times = pd.to_datetime(frame[time_col], utc=True)
        window = (times.min().to_pydatetime(warn=False), times.max().to_pydatetime(warn=False))
    profile = profile_frame(frame, columns=columns, metadata=meta, window=window)
    return write_profile(profile, Path(out_path))
