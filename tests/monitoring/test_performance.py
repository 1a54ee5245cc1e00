"""``python -m monitoring performance``: the join with delayed outcomes, the clock, the verdict."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from feature_repo.settings import Settings
from monitoring import cli
from monitoring.predictions import PredictionLog
from tests.monitoring.loopback import Webhook

DAYS = [datetime(2013, 7, 1, tzinfo=UTC), datetime(2013, 7, 2, tzinfo=UTC)]
PER_DAY = 400
THRESHOLD = 0.5
TAG = "flight_delay:perftest"


@pytest.fixture(autouse=True)
def _quiet_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "configure_from_args", lambda *args: None)


def _champion(settings: Settings, validation: dict[str, float], monkeypatch: Any) -> None:
    """A registry entry with the contract's metadata; the artifact itself is never loaded."""
    from sklearn.dummy import DummyClassifier

    from model_registry import CHAMPION
    from training.registry import save_model, set_stage

    monkeypatch.setenv("BENTOML_HOME", str(settings.bentoml_home))  # restored after the test
    metadata = {"threshold": THRESHOLD, "metrics": validation, "feature_service": "fs"}
    save_model(settings, DummyClassifier(), metadata, tag=TAG)
    set_stage(settings, TAG, CHAMPION, promoted_at=datetime.now(UTC).isoformat())


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    """Two days of logged predictions and the arrivals that follow them in the raw layer."""
    rng = np.random.default_rng(7)
    settings = Settings(data_dir=tmp_path / "data")
    rows = []
    for day in DAYS:
        for i in range(PER_DAY):
            served = day + timedelta(minutes=3 * i)
            late = rng.random() < 0.3
            rows.append(
                {
                    "flight_id": f"{day:%m%d}-{i}",
                    "served": served,
                    "late": late,
                    "probability": float(np.clip(0.35 + 0.3 * late + rng.normal(0, 0.2), 0, 1)),
                    "fate": rng.choice(["landed", "diverted", "cancelled"], p=[0.9, 0.05, 0.05]),
                    # Known when the flight lands, a few hours after the prediction.
                    "knowable_at": served + timedelta(hours=3),
                }
            )
    flights = pd.DataFrame(rows)
    log = PredictionLog(settings.monitoring_dir / "predictions", timedelta(days=1))
    for row in flights.itertuples():
        log.record(row.flight_id, row.served, row.probability, TAG)
    # A flight scored twice counts once, with its latest score.
    for row in flights.head(10).itertuples():
        log.record(row.flight_id, row.served + timedelta(minutes=1), 0.99, TAG)
    log.close()
    flights.loc[flights.index[:10], "probability"] = 0.99

    arrivals = flights[flights["fate"] != "cancelled"].copy()
    arrivals["arr_delay"] = np.where(arrivals["late"], 45.0, 3.0)
    arrivals.loc[arrivals["fate"] == "diverted", "arr_delay"] = np.nan
    arrivals["knowable_at"] = arrivals["knowable_at"].astype("datetime64[us, UTC]")
    for day, part in arrivals.groupby(arrivals["knowable_at"].dt.date):
        folder = settings.raw_dir / "arrivals" / f"date={day.isoformat()}"
        folder.mkdir(parents=True)
        part[["flight_id", "arr_delay", "knowable_at"]].to_parquet(folder / "part-0.parquet")
    (settings.raw_dir / "_watermark.json").write_text(json.dumps({"through": "2013-07-03"}))
    return {"settings": settings, "flights": flights, "out": tmp_path / "out"}


def _run(world: dict[str, Any], *args: object) -> tuple[int, dict[str, Any] | None]:
    settings = world["settings"]
    argv = ["performance", "--data-dir", settings.data_dir, "--out", world["out"], *args]
    code = cli.main([str(a) for a in argv])
    path = world["out"] / "performance.json"
    return code, json.loads(path.read_text()) if path.exists() else None


def _expected(flights: pd.DataFrame, now: datetime) -> pd.DataFrame:
    known = flights[(flights["fate"] == "landed") & (flights["knowable_at"] <= now)]
    return known.assign(y=known["late"].astype(int))


WINDOW = ("--window", "2013-07-01", "2013-07-03")


def test_outcomes_join_per_day_against_validation(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _champion(world["settings"], {"roc_auc": 0.8, "precision": 0.5, "recall": 0.6}, monkeypatch)
    now = datetime(2013, 7, 4, tzinfo=UTC)
    monkeypatch.setenv("FEASTLINE_NOW", now.isoformat())
    code, report = _run(world, *WINDOW, "--margin", "0.5")
    assert code == cli.EXIT_OK and report is not None
    (model,) = report["models"]
    assert model["model_tag"] == TAG and model["threshold"] == THRESHOLD
    assert model["duplicates_dropped"] == 10
    assert model["validation"] == {"roc_auc": 0.8, "precision": 0.5, "recall": 0.6}
    expected = _expected(world["flights"], now)
    for window, day in zip(model["windows"], DAYS, strict=True):
        rows = expected[expected["served"].dt.floor("D") == day]
        assert window["label"] == f"{day:%Y-%m-%d}"
        assert window["predictions"] == PER_DAY
        assert window["labelled"] == len(rows)
        assert window["positives"] == int(rows["y"].sum())
        assert window["roc_auc"] == pytest.approx(roc_auc_score(rows["y"], rows["probability"]))
    overall = model["overall"]
    predicted = expected["probability"] >= THRESHOLD
    assert overall["labelled"] == len(expected)
    assert overall["precision"] == pytest.approx(
        (predicted & expected["late"]).sum() / predicted.sum()
    )
    assert overall["recall"] == pytest.approx(
        (predicted & expected["late"]).sum() / expected["late"].sum()
    )
    assert overall["degraded"] == [] and report["failed"] is False


def test_json_output_is_the_report(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FEASTLINE_NOW", "2013-07-04T00:00:00+00:00")
    code, report = _run(world, *WINDOW, "--threshold", THRESHOLD, "--json")
    assert code == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out) == report


def test_degradation_exits_3_and_alerts(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, webhook: Webhook, tmp_path: Path
) -> None:
    _champion(world["settings"], {"roc_auc": 0.99, "precision": 0.2, "recall": 0.2}, monkeypatch)
    monkeypatch.setenv("FEASTLINE_NOW", "2013-07-04T00:00:00+00:00")
    alerts = tmp_path / "alerts.jsonl"
    code, report = _run(
        world, *WINDOW, "--alert-jsonl", alerts, "--webhook", webhook.url, "--fail-on", "any"
    )
    assert code == cli.EXIT_DRIFT and report is not None
    assert report["models"][0]["overall"]["degraded"] == ["roc_auc"]
    assert all(w["degraded"] == ["roc_auc"] for w in report["models"][0]["windows"])
    (line,) = alerts.read_text().splitlines()
    alert = json.loads(line)
    assert alert["kind"] == "performance" and alert["model_tag"] == TAG
    assert {(d["window"], d["metric"]) for d in alert["degraded"]} == {
        ("all", "roc_auc"),
        ("2013-07-01", "roc_auc"),
        ("2013-07-02", "roc_auc"),
    }
    assert webhook.received == [alert]
    # Only the metrics named decide.
    code, _ = _run(world, *WINDOW, "--metrics", "precision", "recall")
    assert code == cli.EXIT_OK


def test_outcomes_not_yet_knowable_are_not_used(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime(2013, 7, 1, 12, tzinfo=UTC)
    monkeypatch.setenv("FEASTLINE_NOW", now.isoformat())
    code, report = _run(world, *WINDOW, "--threshold", THRESHOLD, "--min-labels", 50)
    assert code == cli.EXIT_OK and report is not None
    first, second = report["models"][0]["windows"]
    assert first["labelled"] == len(_expected(world["flights"], now)) > 50
    assert second["labelled"] == 0 and second["judged"] is False
    assert any("ends after now" in note for note in report["notes"])
    assert any("not in the registry" in note for note in report["notes"])


def test_bad_input_exits_2_naming_what_is_missing(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = _run(world, "--window", "2013-08-01", "2013-08-02", "--threshold", 0.5)
    assert code == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.replace("\n", "")
    assert "predictions" in err and "no predictions" in err
    code, _ = _run(world, *WINDOW)
    assert code == cli.EXIT_BAD_INPUT
    assert TAG in capsys.readouterr().err.replace("\n", "")
    code, _ = _run(world, "--window", "2013-07-03", "2013-07-01", "--threshold", 0.5)
    assert code == cli.EXIT_BAD_INPUT
