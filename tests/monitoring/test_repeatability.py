"""Repeatable drift scores: the same rows give the same numbers, bit for bit, on every run.

whylogs' quantile sketch is randomised (PSI moved between 1.67 and 1.72 on identical
data), so scores come from the exact histograms each profile carries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from monitoring import histograms
from monitoring.drift import compare
from monitoring.profiles import merge, profile_frame, read_profile, write_profile
from tests.monitoring.realdata import WEATHER_COLUMNS


def _scores(result) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [
        (c.column, c.psi, c.js, c.novel, c.null_delta, c.binned, c.drifted) for c in result.columns
    ]


def test_the_same_data_compared_twice_gives_identical_scores(
    weather: pd.DataFrame, tmp_path: Path
) -> None:
    january = weather.loc[weather["month"] == 1, WEATHER_COLUMNS]
    july = weather.loc[weather["month"] == 7, WEATHER_COLUMNS]
    runs = []
    for attempt in range(3):
        # Profiled afresh each time, through the file format, as separate runs would.
        reference = write_profile(profile_frame(january), tmp_path / f"jan-{attempt}.bin")
        target = write_profile(profile_frame(july), tmp_path / f"jul-{attempt}.bin")
        runs.append(_scores(compare(read_profile(reference), read_profile(target))))
    assert runs[0] == runs[1] == runs[2]  # exact equality: floats bit for bit
    temp = next(s for s in runs[0] if s[0] == "temp")
    assert temp[1] > 5  # and the scores are real ones: January vs July temperature


def test_a_week_merged_from_days_scores_exactly_like_the_week(weather: pd.DataFrame) -> None:
    reference = profile_frame(weather.loc[weather["month"] == 1, WEATHER_COLUMNS])
    week = weather[(weather["month"] == 7) & (weather["day"] <= 7)]
    days = [profile_frame(rows[WEATHER_COLUMNS]) for _, rows in week.groupby("day")]
    merged = compare(reference, merge(days))
    whole = compare(reference, profile_frame(week[WEATHER_COLUMNS]))
    assert _scores(merged) == _scores(whole)


def test_buckets_keep_integers_exact_and_fine_for_large_values() -> None:
    values = np.array([0.0, 1.0, 7.0, 23.0, 2013.0, -5.0, 1013.25, 1013.6, 0.123456])
    buckets = histograms.bucket(values)
    assert buckets[:6].tolist() == [0.0, 1.0, 7.0, 23.0, 2013.0, -5.0]
    # Pressure keeps half-hPa resolution; everything is within 1/1024 of its value.
    assert buckets[6:8].tolist() == [1013.0, 1013.5]
    assert np.all(np.abs(buckets - values) <= np.abs(values) / 1024)


def test_histograms_count_nulls_text_and_survive_the_file(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "x": [1.5, np.nan, 2.5, np.inf, 1.5],
            "code": ["a", None, "b", "a", "a"],
            "gone": [np.nan] * 5,
        }
    )
    profile = read_profile(write_profile(profile_frame(frame), tmp_path / "p.bin"))
    x, code, gone = (profile.histogram(c) for c in ("x", "code", "gone"))
    assert x == histograms.Histogram("numeric", 2, (1.5, 2.5), (2, 1))
    assert code == histograms.Histogram("categorical", 1, ("a", "b"), (3, 1))
    assert gone is not None and gone.kind == "empty" and gone.nulls == 5


def test_too_many_categories_are_pooled_deterministically() -> None:
    values = pd.Series([f"v{i:05d}" for i in range(histograms.MAX_CATEGORIES + 50)] + ["v00001"])
    first, second = histograms.of_series(values), histograms.of_series(values.sample(frac=1))
    assert first == second
    assert len(first.keys) == histograms.MAX_CATEGORIES and histograms.OTHER in first.keys
    assert first.present == len(values)


def test_a_profile_without_histograms_still_compares_from_the_sketches(
    weather: pd.DataFrame,
) -> None:
    # Profiles written by whylogs tools (or before histograms existed) carry none.
    from monitoring.profiles import Profile

    january = profile_frame(weather.loc[weather["month"] == 1, WEATHER_COLUMNS])
    view = january._view
    stripped = type(view)(
        columns=view.get_columns(),
        dataset_timestamp=view.dataset_timestamp,
        creation_timestamp=view.creation_timestamp,
        metadata={},
    )
    bare = Profile(stripped)
    assert not bare.has_histograms and bare.histogram("temp") is None
    result = compare(bare, january)
    assert not result.deterministic
    assert result.drifted == []


def test_histograms_by_group_are_each_groups_own(weather: pd.DataFrame) -> None:
    """Calibration counts each day's histograms in one pass over the columns; each must be
    the histogram of that day's rows alone, nulls, infinities, flags and text included."""
    from monitoring.profiles import grouped_histograms, histograms_of

    frame = weather[[*WEATHER_COLUMNS, "time_hour"]].head(24 * 20).copy()
    frame.loc[frame.index[5], "temp"] = np.inf  # missing, as in of_series
    frame.loc[frame.index[30:60], "wind_speed"] = np.nan  # a day and more without values
    frame["flag"] = frame["temp"] > 50
    frame["note"] = np.where(frame["humid"] > 60, "wet", None)
    keys = frame["time_hour"].dt.date.to_numpy().copy()
    keys[7] = None  # a row without a day counts nowhere, as groupby leaves it out
    columns = [*WEATHER_COLUMNS, "flag", "note"]
    grouped = grouped_histograms(frame[columns], keys)
    expected = {
        day: histograms_of(rows)
        for day, rows in frame[columns].groupby(keys, sort=True)  # drops the missing key
    }
    assert list(grouped) == list(expected)
    assert grouped == expected
    assert any(h.kind == "empty" for day in grouped.values() for h in day.values())


def test_a_reused_scorer_gives_the_bits_of_a_fresh_one(weather: pd.DataFrame) -> None:
    from monitoring.drift import HistogramScorer, score_histograms

    columns = WEATHER_COLUMNS  # numbers and text (the airport)
    reference = histograms.of_frame(weather.loc[weather["month"] <= 5, columns])
    scorers = {c: HistogramScorer(reference[c]) for c in columns}
    for month in (1, 7, 12):
        target = histograms.of_frame(weather.loc[weather["month"] == month, columns])
        for column in columns:
            again = scorers[column].score(target[column])
            assert again == score_histograms(reference[column], target[column])
    assert scorers["temp"].score(target["temp"]).psi > 0.2  # real scores: December against Jan-May
