"""Drift on real data: the seasons move the weather, random halves do not move anything."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import (
    ColumnDrift,
    DriftInputError,
    DriftPolicy,
    DriftResult,
    compare,
    js_distance,
    psi,
)
from monitoring.profiles import Profile, merge, profile_frame
from tests.monitoring.realdata import WEATHER_COLUMNS


def by_column(result: DriftResult) -> dict[str, ColumnDrift]:
    return {c.column: c for c in result.columns}


def halves(frame: pd.DataFrame, seed: int) -> tuple[Profile, Profile]:
    mask = np.random.default_rng(seed).random(len(frame)) < 0.5
    return profile_frame(frame[mask]), profile_frame(frame[~mask])


def test_january_against_july_weather_flags_temperature(
    weather_jan: Profile, weather_jul: Profile
) -> None:
    result = compare(weather_jan, weather_jul)
    columns = by_column(result)
    temp = columns["temp"]
    assert temp.drifted and temp.kind == "numeric"
    assert temp.psi is not None and temp.psi > 5
    assert temp.js is not None and temp.js > 0.9
    assert temp.whylogs is not None
    assert (temp.whylogs.algorithm, temp.whylogs.category) == ("ks", "DRIFT")
    assert columns["dewp"].drifted
    # Every airport reports every hour in both months.
    assert columns["origin"].kind == "categorical" and not columns["origin"].drifted
    assert result.failed and result.drift_share > 0.5


def test_random_halves_of_the_training_set_do_not_drift(pipeline) -> None:
    training = pipeline.training_set
    columns = [*training.manifest["features"], training.manifest["label"]]
    reference, target = halves(training.frame[columns], seed=2013)
    result = compare(reference, target)
    assert len(result.columns) == len(columns)
    assert result.drift_share <= 0.05, [c.column for c in result.drifted]
    assert not result.failed


def test_random_halves_of_july_flights_do_not_drift(source: dict[str, pd.DataFrame]) -> None:
    flights = source["flights"]
    july = flights.loc[flights["month"] == 7].drop(
        columns=["year", "month", "day", "time_hour", "tailnum", "flight"]
    )
    result = compare(*halves(july, seed=7))
    assert result.drift_share <= 0.05, [c.column for c in result.drifted]
    assert max(c.psi or 0 for c in result.columns) < 0.05


def test_a_critical_column_fails_the_run_on_its_own(
    weather_jan: Profile, weather_jul: Profile
) -> None:
    lenient = DriftPolicy(max_drift_share=1.0)
    assert not compare(weather_jan, weather_jul, lenient).failed
    strict = DriftPolicy(max_drift_share=1.0, critical=("temp",))
    result = compare(weather_jan, weather_jul, strict)
    assert result.failed
    assert result.reasons == ["critical columns drifted: temp"]


def test_weekly_targets_merge_into_the_month(
    weather: pd.DataFrame, weather_jan: Profile, weather_jul: Profile
) -> None:
    july = weather[weather["month"] == 7]
    weeks = [
        profile_frame(rows[WEATHER_COLUMNS])
        for _, rows in july.groupby(july["time_hour"].dt.isocalendar().week)
    ]
    merged = compare(weather_jan, merge(weeks))
    whole = compare(weather_jan, weather_jul)
    assert merged.target_rows == whole.target_rows == len(july)
    assert [c.column for c in merged.drifted] == [c.column for c in whole.drifted]
    for a, b in zip(merged.columns, whole.columns, strict=True):
        assert a.js == pytest.approx(b.js, abs=0.02)


def test_a_feature_that_goes_missing_counts_as_drift(weather: pd.DataFrame) -> None:
    july = weather.loc[weather["month"] == 7, WEATHER_COLUMNS]
    broken = july.assign(wind_speed=np.nan)
    result = compare(profile_frame(july), profile_frame(broken))
    wind = by_column(result)["wind_speed"]
    assert wind.drifted and wind.target_null_share == 1.0
    assert wind.note == "no values on one side"
    assert [c.column for c in result.drifted] == ["wind_speed"]


def test_profiles_without_common_columns_or_critical_column_are_refused(
    weather_jan: Profile,
) -> None:
    other = profile_frame(pd.DataFrame({"something_else": [1.0, 2.0]}))
    with pytest.raises(DriftInputError, match="no columns in common"):
        compare(weather_jan, other)
    with pytest.raises(DriftInputError, match="critical columns not in both profiles: nope"):
        compare(weather_jan, weather_jan, DriftPolicy(critical=("nope",)))


def test_psi_and_js_on_known_distributions() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert js_distance([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert js_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    # 10% of the mass moving between two bins: 0.1 * ln(0.6 / 0.5) + 0.1 * ln(0.5 / 0.4).
    assert psi([0.5, 0.5], [0.6, 0.4]) == pytest.approx(0.1 * np.log(1.2 * 1.25))
