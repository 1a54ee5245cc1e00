"""monitoring.paired: per-model metrics and paired differences with their confidence intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from monitoring.compare_models import BETTER, UNKNOWN, WORSE, compare
from monitoring.paired import bootstrap_means, compare_pair, paired_auc


def scores(n: int, seed: int, noise_a: float, noise_b: float):
    """Labels and two models' probabilities: the noisier model ranks worse."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = (signal + rng.normal(scale=0.8, size=n) > 0.8).astype(int)
    a = 1 / (1 + np.exp(-(signal + rng.normal(scale=noise_a, size=n))))
    b = 1 / (1 + np.exp(-(signal + rng.normal(scale=noise_b, size=n))))
    return y, a, b


def test_per_model_metrics_are_scikit_learns() -> None:
    y, a, b = scores(3000, 1, 0.5, 1.0)
    result = compare_pair(y, a, b, resamples=200)
    assert result["roc_auc"].champion == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert result["roc_auc"].challenger == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert result["log_loss"].champion == pytest.approx(log_loss(y, a), abs=1e-12)
    assert result["brier"].challenger == pytest.approx(brier_score_loss(y, b), abs=1e-12)


def test_delong_interval_matches_a_paired_bootstrap_of_the_auc_difference() -> None:
    y, a, b = scores(4000, 2, 0.6, 0.9)
    delong = paired_auc(y, a, b)
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(400):
        i = rng.integers(0, len(y), len(y))
        diffs.append(roc_auc_score(y[i], b[i]) - roc_auc_score(y[i], a[i]))
    half_width = (delong.ci_high - delong.ci_low) / 2
    assert half_width == pytest.approx(1.96 * np.std(diffs), rel=0.15)
    assert delong.ci_high < 0  # the noisier challenger ranks worse, and the CI says so


def test_identical_models_differ_by_nothing() -> None:
    y, a, _ = scores(2000, 3, 0.5, 0.5)
    result = compare_pair(y, a, a.copy(), resamples=200)
    for metric in result.values():
        assert metric.difference == 0 and metric.ci_low == 0 and metric.ci_high == 0
        assert metric.gain_sign == 0


def test_the_bootstrap_is_seeded_and_resamples_flights_jointly() -> None:
    values = np.vstack([np.arange(500.0), np.arange(500.0) * 2])
    first, again = bootstrap_means(values, 300, seed=5), bootstrap_means(values, 300, seed=5)
    assert np.array_equal(first, again)
    # The same flights for both rows: the second mean is exactly twice the first.
    assert np.allclose(first[:, 1], 2 * first[:, 0])
    assert not np.array_equal(first, bootstrap_means(values, 300, seed=6))


def paired_frame(y, a, b) -> pd.DataFrame:
    n = len(y)
    return pd.DataFrame(
        {
            "flight_id": [f"f{i}" for i in range(n)],
            "prediction_time": pd.date_range("2013-02-01", periods=n, freq="5min", tz="UTC"),
            "champion_tag": "flight_delay:a",
            "champion": a,
            "challenger": b,
            "label": y.astype(float),
            "carrier": np.where(np.arange(n) % 2, "UA", "AA"),
            "origin": "EWR",
        }
    )


@pytest.mark.parametrize(
    ("noise_champion", "noise_challenger", "verdict"),
    [(1.2, 0.3, BETTER), (0.3, 1.2, WORSE), (0.5, 0.5, UNKNOWN)],
)
def test_the_verdict_follows_the_roc_auc_interval(noise_champion, noise_challenger, verdict):
    y, a, b = scores(3000, 4, noise_champion, noise_challenger)
    window = (pd.Timestamp("2013-02-01", tz="UTC"), pd.Timestamp("2013-03-01", tz="UTC"))
    result = compare(paired_frame(y, a, b), "flight_delay:b", window, window[1], resamples=200)
    assert result.verdict == verdict
    assert {s.slice for s in result.slices} == {"carrier=AA", "carrier=UA", "origin=EWR"}
    assert result.failed == (verdict == WORSE)
    assert len(result.daily) == 11  # 3000 flights five minutes apart
    assert result.overall.labelled == 3000


def test_too_few_labels_is_not_yet_known() -> None:
    y, a, b = scores(3000, 5, 1.2, 0.3)
    frame = paired_frame(y, a, b)
    frame.loc[frame.index[150:], "label"] = np.nan  # outcomes not known yet
    window = (pd.Timestamp("2013-02-01", tz="UTC"), pd.Timestamp("2013-03-01", tz="UTC"))
    result = compare(frame, "flight_delay:b", window, window[1], min_labels=200, resamples=200)
    assert result.overall.labelled == 150 and result.overall.flights == 3000
    assert result.verdict == UNKNOWN
