"""monitoring.paired: per-model metrics and paired differences with their confidence intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from monitoring.compare_models import BETTER, UNKNOWN, WORSE, compare
from monitoring.paired import bootstrap_means, clustered_auc, compare_pair, paired_auc


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


def days_of_flights(days: int, per_day: int, seed: int, day_effect: float):
    """Labels and two models' probabilities over ``days`` days. Which model ranks a day's
    flights better changes from day to day by ``day_effect`` (a day's weather favours one),
    and neither is better on average: the true difference is 0."""
    rng = np.random.default_rng(seed)
    ys, a_all, b_all, day_of = [], [], [], []
    for day in range(days):
        tilt = rng.normal(scale=day_effect)
        signal = rng.normal(size=per_day)
        y = (signal + rng.normal(scale=0.8, size=per_day) > 0.8).astype(int)
        noise_a, noise_b = max(0.05, 0.8 + tilt), max(0.05, 0.8 - tilt)
        a_all.append(signal + rng.normal(scale=noise_a, size=per_day))
        b_all.append(signal + rng.normal(scale=noise_b, size=per_day))
        ys.append(y)
        day_of.append(np.full(per_day, day))
    return np.concatenate(ys), np.concatenate(a_all), np.concatenate(b_all), np.concatenate(day_of)


def test_the_interval_over_days_holds_its_level_where_delongs_does_not() -> None:
    # The case the live gate meets: three days of flights whose noise is mostly between
    # days. DeLong's interval, which counts flights, calls "significant" what is the day.
    windows = 200
    wrong = {"delong": 0, "days": 0}
    for seed in range(windows):
        y, a, b, days = days_of_flights(3, 900, seed, day_effect=0.15)
        flights, by_day = paired_auc(y, a, b), clustered_auc(y, a, b, days)
        wrong["delong"] += not flights.ci_low <= 0 <= flights.ci_high
        wrong["days"] += not by_day.ci_low <= 0 <= by_day.ci_high
        assert by_day.difference == flights.difference  # the same pooled difference
        assert by_day.ci_high - by_day.ci_low >= flights.ci_high - flights.ci_low
    assert wrong["delong"] / windows > 0.3, wrong  # 44% on these seeds: 2.6x too narrow
    assert wrong["days"] / windows < 0.09, wrong


def test_without_a_day_effect_the_interval_over_days_still_covers() -> None:
    wrong = 0
    for seed in range(100):
        y, a, b, days = days_of_flights(4, 600, 1000 + seed, day_effect=0.0)
        result = clustered_auc(y, a, b, days)
        wrong += not result.ci_low <= 0 <= result.ci_high
    assert wrong / 100 < 0.09


def test_a_model_at_chance_is_clearly_worse_in_three_days_and_unjudged_in_two() -> None:
    y, a, _, days = days_of_flights(3, 900, 7, day_effect=0.25)
    chance = np.random.default_rng(8).random(len(y))
    worse = clustered_auc(y, a, chance, days)
    assert worse.method == "day jackknife" and worse.ci_high < -0.1
    first_two = days < 2
    early = clustered_auc(y[first_two], a[first_two], chance[first_two], days[first_two])
    assert early.difference is not None and early.ci_low is None and early.ci_high is None


def test_the_comparison_groups_flights_in_days_from_the_window_start() -> None:
    y, a, b, _ = days_of_flights(4, 300, 9, day_effect=0.25)
    frame = paired_frame(y, a, b)  # 1,200 flights five minutes apart: about 4.2 days
    window = (pd.Timestamp("2013-02-01", tz="UTC"), pd.Timestamp("2013-03-01", tz="UTC"))
    by_day = compare(frame, "flight_delay:b", window, window[1], resamples=200)
    by_flight = compare(frame, "flight_delay:b", window, window[1], resamples=200,
                        ci_unit="flight")  # fmt: skip
    auc_day, auc_flight = by_day.overall.metrics["roc_auc"], by_flight.overall.metrics["roc_auc"]
    assert auc_day.method == "day jackknife" and auc_flight.method == "delong"
    assert auc_day.difference == auc_flight.difference
    assert by_day.to_dict()["policy"]["ci_unit"] == "day"
    # A day's own row has one block, so it keeps DeLong's interval within the day.
    assert {d.metrics["roc_auc"].method for d in by_day.daily} == {"delong"}
    with pytest.raises(ValueError, match="ci_unit"):
        compare(frame, "flight_delay:b", window, window[1], ci_unit="hour")
