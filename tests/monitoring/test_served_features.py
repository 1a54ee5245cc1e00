"""The served-features log and the service's ServedDataLogger that feeds all three logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from monitoring.parquet_log import log_parts
from monitoring.served_features import (
    PREFIX,
    ServedFeatureLog,
    newest_served_at,
    read_served_features,
)

DAY = timedelta(days=1)
START = datetime(2013, 7, 1, tzinfo=UTC)


def test_rows_with_changing_columns_read_back_by_window(tmp_path: Path) -> None:
    log = ServedFeatureLog(tmp_path, DAY, writer_id="w1", max_wait_seconds=0.02)
    for hour in range(72):
        row = {"served_at": START + timedelta(hours=hour), "flight_id": f"f{hour}", "x": hour}
        # A feature missing in every row of a batch is a null column in that part only.
        row["gust"] = None if hour < 30 else float(hour)
        row["kind"] = "a" if hour % 2 else None
        assert log.log(row)
        if hour % 10 == 0:
            assert log.flush()
    log.close()
    assert log.stats.rows_processed == 72 and log.stats.rows_dropped == 0

    everything = read_served_features(tmp_path)
    assert len(everything) == 72
    assert everything["served_at"].is_monotonic_increasing
    assert str(everything["served_at"].dtype) == "datetime64[us, UTC]"
    assert everything["gust"].isna().sum() == 30
    second_day = read_served_features(tmp_path, START + DAY, START + 2 * DAY)
    assert list(second_day["x"]) == list(range(24, 48))
    # The first day's parts end before the second day starts: their footers say so.
    assert all(
        "20130701" not in p.name
        for p in log_parts(tmp_path, PREFIX, START + DAY, None, "served_at")
    )
    assert newest_served_at(tmp_path) == START + timedelta(hours=71)


def test_an_empty_folder_reads_as_no_rows(tmp_path: Path) -> None:
    assert read_served_features(tmp_path).empty
    assert newest_served_at(tmp_path) is None


class _Flight:
    """Stands in for a validated FlightRequest: the logger reads the fields and the id."""

    def __init__(self, i: int, flight_id: str | None) -> None:
        from feature_repo.flights.requests import FlightRequest

        self._request = FlightRequest(
            origin="EWR",
            dest="ORD",
            carrier="UA",
            tailnum=None if i == 0 else f"N{i}",
            sched_dep=datetime(2013, 7, 1, 12, i, tzinfo=UTC).astimezone(
                timezone(timedelta(hours=-4))
            ),
            distance=719.0,
            flight_id=flight_id,
        )

    def __getattr__(self, name: str) -> object:
        return getattr(self._request, name)


def test_served_data_logger_feeds_profiles_predictions_and_served_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feature_repo.settings import Settings
    from monitoring.layout import predictions_dir, profiles_dir, served_features_dir
    from monitoring.predictions import read_predictions
    from monitoring.profiles import read_profiles
    from serving.served_data import ServedDataLogger

    monkeypatch.setenv("FEASTLINE_PROFILE_INTERVAL", "1d")
    settings = Settings(data_dir=tmp_path)
    flights = [_Flight(i, None if i == 1 else f"F{i}") for i in range(4)]
    inputs = ["origin", "carrier", "weather__temp", "plane__type"]
    columns = {
        "origin": ["EWR"] * 4,
        "dest": ["ORD"] * 4,
        "carrier": ["UA"] * 4,
        "tailnum": ["", "N1", "N2", "N3"],
        "weather__temp": [70.0, None, 71.5, 72.0],
        "plane__type": ["Fixed wing", None, "Fixed wing", "Rotorcraft"],
        "not_an_input": [1, 2, 3, 4],
    }
    served_at = datetime(2013, 7, 1, tzinfo=UTC)
    logger = ServedDataLogger(settings, writer_id="t")
    logger.log(flights, columns, inputs, [0.1, 0.2, 0.3, 0.4], served_at, "flight_delay:abc")
    logger.close()
    assert logger.dropped == 0

    profile = read_profiles([profiles_dir(settings)])
    assert profile.rows == 4
    assert set(profile.columns) == {*inputs, "probability"}

    predictions = read_predictions(predictions_dir(settings))
    assert sorted(predictions["flight_id"]) == ["F0", "F2", "F3"]  # the id-less flight is not
    assert set(predictions["model_tag"]) == {"flight_delay:abc"}

    served = read_served_features(served_features_dir(settings))
    assert len(served) == 4
    # What re-fetching needs: join keys and request-time fields, as sent to Feast.
    for column in ("dest", "tailnum", "sched_dep_epoch", "sched_dep_utc_offset_min", "distance"):
        assert column in served.columns
    assert list(served["tailnum"]) == ["", "N1", "N2", "N3"]
    assert list(served["sched_dep_utc_offset_min"]) == [-240] * 4
    assert served["weather__temp"].isna().sum() == 1
    assert "not_an_input" not in served.columns
    assert list(served["probability"]) == [0.1, 0.2, 0.3, 0.4]
    assert served["flight_id"].isna().sum() == 1


def test_rows_logged_without_a_profile_reach_the_prediction_log_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay's counterfactual models: their predictions are kept, no profile is built
    (their inputs are the rows the champion's profile already holds)."""
    from feature_repo.settings import Settings
    from monitoring.layout import challenger_profiles_dir, predictions_dir, profiles_dir
    from monitoring.predictions import read_predictions
    from monitoring.profiles import read_profiles
    from serving.served_data import ServedDataLogger

    monkeypatch.setenv("FEASTLINE_PROFILE_INTERVAL", "1d")
    settings = Settings(data_dir=tmp_path)
    flights = [_Flight(i, f"F{i}") for i in range(3)]
    inputs = ["origin", "weather__temp"]
    columns = {"origin": ["EWR"] * 3, "weather__temp": [70.0, 71.0, None]}
    served_at = datetime(2013, 7, 1, tzinfo=UTC)
    logger = ServedDataLogger(settings, writer_id="t")
    with pytest.raises(ValueError, match="champion"):
        logger.log(flights, columns, inputs, [0.1] * 3, served_at, "m:champ", profile=False)
    logger.log(flights, columns, inputs, [0.1, 0.2, 0.3], served_at, "m:champ")
    logger.log(flights, columns, inputs, [0.5, 0.6, 0.7], served_at, "m:shadow", role="shadow")
    logger.log(
        flights, columns, inputs, [0.8, 0.9, 1.0], served_at, "m:other", role="other",
        profile=False,
    )  # fmt: skip
    logger.close()
    assert logger.dropped == 0

    predictions = read_predictions(predictions_dir(settings))
    by_tag = predictions.groupby("model_tag")["probability"].apply(sorted).to_dict()
    assert by_tag == {
        "m:champ": [0.1, 0.2, 0.3], "m:shadow": [0.5, 0.6, 0.7], "m:other": [0.8, 0.9, 1.0]
    }  # fmt: skip
    assert read_profiles([profiles_dir(settings)]).rows == 3
    assert read_profiles([challenger_profiles_dir(settings, "m:shadow")]).rows == 3
    assert not challenger_profiles_dir(settings, "m:other").exists()
