"""Alert sinks and the prediction log."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from monitoring.alerts import AlertError, JsonlSink, WebhookSink, build_alert, dispatch
from monitoring.drift import compare
from monitoring.predictions import PredictionLog, read_predictions
from monitoring.profiles import Profile
from tests.monitoring.loopback import Webhook


def test_alert_sinks_deliver_the_same_alert(
    weather_jan: Profile, weather_jul: Profile, tmp_path: Path, webhook: Webhook
) -> None:
    result = compare(weather_jan, weather_jul)
    alert = build_alert(result, model_tag="m:1", reference="jan.bin", targets=["jul.bin"])
    jsonl = JsonlSink(tmp_path / "alerts" / "drift.jsonl")
    down = WebhookSink("http://127.0.0.1:9/unreachable", timeout_seconds=2)
    errors = dispatch(alert, [down, jsonl, WebhookSink(webhook.url)])
    assert len(errors) == 1 and errors[0].startswith("webhook: webhook http://127.0.0.1:9")
    dispatch(alert, [jsonl])
    lines = [json.loads(line) for line in jsonl.path.read_text().splitlines()]
    assert lines == [alert, alert]
    assert webhook.received == [alert]
    assert {d["column"] for d in alert["drifted"]} >= {"temp", "dewp"}
    with pytest.raises(AlertError):
        down.send(alert)
    with pytest.raises(ValueError, match="http"):
        WebhookSink("file:///etc/passwd")


def test_prediction_log_keeps_every_prediction(
    source: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    flights = source["flights"]
    week = flights[(flights["month"] == 7) & (flights["day"] <= 7)].copy()
    week["time_hour"] = pd.to_datetime(week["time_hour"], utc=True)
    week["flight_id"] = week["carrier"] + week["flight"].astype(str) + week["time_hour"].astype(str)
    probability = (week["dep_delay"].fillna(0).clip(0, 120) / 120).tolist()
    log = PredictionLog(tmp_path, timedelta(days=1), max_wait_seconds=0.05)
    for row, p in zip(week.itertuples(), probability, strict=True):
        assert log.record(row.flight_id, row.time_hour, p, "flight_delay:abc")
    log.close()
    assert log.stats.rows_processed == len(week) and log.stats.rows_dropped == 0

    stored = read_predictions(tmp_path)
    assert list(stored.columns) == [
        "flight_id",
        "prediction_time",
        "probability",
        "model_tag",
        "role",
    ]
    assert set(stored["role"]) == {"champion"}  # the default: no rollout
    assert len(stored) == len(week)
    assert sorted(stored["flight_id"]) == sorted(week["flight_id"])
    assert str(stored["prediction_time"].dtype) == "datetime64[us, UTC]"
    # One part per simulated day, each atomically written.
    days = {p.name.split("-")[1] for p in tmp_path.glob("*.parquet")}
    assert len(days) == week["time_hour"].dt.floor("D").nunique()

    day = pd.Timestamp("2013-07-03", tz="UTC")
    one_day = read_predictions(tmp_path, day, day + pd.Timedelta(days=1))
    assert len(one_day) == int((week["time_hour"].dt.floor("D") == day).sum())


def test_a_part_read_again_is_pruned_by_its_footer_as_it_is_now(tmp_path: Path) -> None:
    """Readers keep each part's time range (a daily check reads the log's history); a part
    rewritten since is judged by its new footer, not the kept range."""
    import pyarrow as pa

    from feature_repo.atomic_io import write_parquet
    from monitoring.predictions import PREDICTION_SCHEMA

    def part(when: str) -> pa.Table:
        row = {
            "flight_id": ["f1"],
            "prediction_time": [pd.Timestamp(when)],
            "probability": [0.5],
            "model_tag": ["flight_delay:abc"],
            "role": ["champion"],
        }
        return pa.Table.from_pandas(pd.DataFrame(row), schema=PREDICTION_SCHEMA)

    path = tmp_path / "predictions-20130701T000000Z-p1.parquet"
    write_parquet(part("2013-07-01T10:00:00Z"), path)
    july_3 = pd.Timestamp("2013-07-03", tz="UTC")
    window = (july_3, july_3 + pd.Timedelta(days=1))
    assert read_predictions(tmp_path, *window).empty  # its rows end before the window
    write_parquet(part("2013-07-03T10:00:00Z"), path)  # the same name, a row in the window
    assert list(read_predictions(tmp_path, *window)["flight_id"]) == ["f1"]
