"""Recency weights for retraining: halve per half-life, refuse the future, reach the booster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.model import ModelInputs, fit_pipeline, predict_proba, recency_weights

NOW = pd.Timestamp("2013-07-01", tz="UTC")
PARAMS = {"max_iter": 30, "max_leaf_nodes": 4, "learning_rate": 0.3}


def test_weights_halve_every_half_life() -> None:
    times = pd.Series(NOW - pd.to_timedelta([0, 30, 60, 90], unit="D"))
    assert recency_weights(times, NOW, 30) == pytest.approx([1.0, 0.5, 0.25, 0.125])


def test_rows_from_the_future_and_bad_half_lives_are_refused() -> None:
    later = pd.Series([NOW + pd.Timedelta(hours=1)])
    with pytest.raises(ValueError, match="newer than"):
        recency_weights(later, NOW, 30)
    with pytest.raises(ValueError, match="half_life_days"):
        recency_weights(pd.Series([NOW]), NOW, 0)


def _shifted_concept(rows: int = 4000) -> pd.DataFrame:
    """Old flights are late when x > 0; the last month's when x < 0."""
    rng = np.random.default_rng(0)
    age = rng.uniform(0, 180, rows)
    x = rng.normal(size=rows)
    recent = age < 30
    label = np.where(recent, x < 0, x > 0).astype(int)
    recent_share = 0.2  # a minority, so an unweighted fit learns the old concept
    keep = ~recent | (rng.uniform(size=rows) < recent_share / (30 / 180))
    frame = pd.DataFrame({"x": x, "label": label, "t": NOW - pd.to_timedelta(age, unit="D")})
    return frame[keep].reset_index(drop=True)


def test_weights_make_the_fit_follow_recent_rows() -> None:
    frame = _shifted_concept()
    inputs = ModelInputs(columns=["x"], categorical=[])
    probe = pd.DataFrame({"x": [2.0]})  # late under the old concept, on time under the new
    plain = fit_pipeline(inputs, PARAMS, 0, frame, "label")
    ones = fit_pipeline(inputs, PARAMS, 0, frame, "label", np.ones(len(frame)))
    weighted = fit_pipeline(inputs, PARAMS, 0, frame, "label", recency_weights(frame["t"], NOW, 7))
    assert predict_proba(plain, probe, ["x"])[0] > 0.5
    assert predict_proba(ones, probe, ["x"]) == pytest.approx(predict_proba(plain, probe, ["x"]))
    assert predict_proba(weighted, probe, ["x"])[0] < 0.5
