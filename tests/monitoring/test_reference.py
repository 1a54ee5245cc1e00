"""The training hook: a reference profile of features, predictions and labels."""

from __future__ import annotations

from pathlib import Path

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from monitoring.drift import compare
from monitoring.profiles import read_profile
from monitoring.reference import PREDICTION_COLUMN, write_reference_profile


def test_the_reference_profile_covers_features_prediction_and_label(
    pipeline, tmp_path: Path
) -> None:
    from whylogs.core import DatasetProfileView

    training = pipeline.training_set
    frame = training.frame.copy()
    features = training.manifest["features"]
    label = training.manifest["label"]
    numeric = [c for c in features if frame[c].dtype.kind == "f"]
    # A small real model, so that the prediction column is a real probability.
    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(frame[numeric].fillna(0), frame[label])
    frame[PREDICTION_COLUMN] = model.predict_proba(frame[numeric].fillna(0))[:, 1]

    path = write_reference_profile(
        frame, features, label, PREDICTION_COLUMN, tmp_path / "model" / "reference.bin",
        model_tag="flight_delay:test",
    )  # fmt: skip

    view = DatasetProfileView.read(str(path))
    assert sorted(view.get_columns()) == sorted([*features, PREDICTION_COLUMN, label])
    profile = read_profile(path)
    assert profile.rows == len(frame) == training.manifest["rows"]
    assert profile.metadata["role"] == "reference"
    assert profile.metadata["model_tag"] == "flight_delay:test"
    start, end = profile.window
    assert start is not None and end is not None and start < end
    assert profile.stats(PREDICTION_COLUMN).kind == "numeric"
    assert 0 <= profile.quantiles(PREDICTION_COLUMN, [0.5])[0] <= 1
    # The reference compared with itself is the trivial no-drift case.
    assert compare(profile, profile).drifted == []
