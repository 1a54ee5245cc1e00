"""Monitoring acceptance on the real data: drift, skew and delayed-label performance.

One module fixture builds its own data directory: raw data through 2013-09-30,
Feast applied, a model trained on January-April (validated on May) and
promoted, its reference profile, then a replay of a week in July and a week in
late September. The replay runs in-process for speed but through the very
code the service runs: for each day the materializer moves the SQLite online
store to the day's 00:00 UTC, the clock moves there, ``Predictor.score``
scores the day's scheduled flights in batches and ``ServedDataLogger`` logs
them exactly as the service does (one profile per simulated day).

Run with ``-s`` to see the drift, skew and performance tables.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from sklearn.metrics import roc_auc_score

from feature_repo.settings import Settings
from monitoring import cli
from monitoring.calibration import Calibration
from monitoring.drift import DriftPolicy, DriftResult, compare
from monitoring.profiles import Profile, profile_frame, read_profile, read_profiles

pytestmark = pytest.mark.integration

JULY = [date(2013, 7, 8) + timedelta(days=i) for i in range(7)]
SEPTEMBER = [date(2013, 9, 20) + timedelta(days=i) for i in range(7)]
INGEST_THROUGH = date(2013, 9, 30)
WRITER = "replay"
BATCH = 500
TINY_GRID = {
    "learning_rate": [0.1],
    "max_leaf_nodes": [15],
    "max_iter": [60],
    "l2_regularization": [1.0],
    "min_samples_leaf": [40],
}
WEATHER = [
    "weather_hourly__temp_f",
    "weather_hourly__dewpoint_f",
    "weather_hourly__humidity_pct",
    "weather_hourly__wind_speed_mph",
    "weather_hourly__wind_gust_mph",
    "weather_hourly__precip_in",
    "weather_hourly__pressure_mb",
    "weather_hourly__visibility_mi",
]
# The model was trained on January-April: a July or September month is new by
# construction, whatever the data did. The reference's calibration finds it (one
# value per day) and leaves it out of the verdict; it is still profiled.
ABSOLUTE_TIME = ["flight_request_features__sched_month"]
PROBABILITY = "probability"

console = Console(file=sys.stdout, width=170)


@dataclass(frozen=True)
class Replayed:
    settings: Settings
    store: Any
    tag: str
    metadata: dict[str, Any]
    reference: Path
    inputs: list[str]
    served: dict[date, int]


@pytest.fixture(autouse=True)
def _quiet_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    # cli.main() would install the JSON handler on the root logger of the whole session.
    monkeypatch.setattr(cli, "configure_from_args", lambda *args: None)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _reference_profile(settings: Settings, run: Any) -> Path:
    """The champion's reference: the registry's, else one written here as training would."""
    from monitoring.layout import reference_path
    from monitoring.reference import write_reference_profile
    from monitoring.registry import model_info
    from training.model import predict_proba

    attached = model_info(settings, run.record.tag).reference_profile
    if attached is not None:
        return attached
    trained = run.trained
    frame = trained.split.train.copy()
    frame[PROBABILITY] = predict_proba(trained.pipeline, frame, trained.inputs.columns)
    return write_reference_profile(
        frame,
        trained.inputs.columns,
        trained.label,
        PROBABILITY,
        reference_path(settings, run.record.tag),
        model_tag=run.record.tag,
    )


def _replay(settings: Settings, store: Any, days: list[date]) -> dict[date, int]:
    """Serve every scheduled flight of ``days`` through the service's code, in-process."""
    from feature_repo.clock import Clock
    from feature_repo.flights.requests import known_codes, request_model, scheduled_flights
    from feature_repo.materialize import Materializer
    from serving.predictor import Predictor
    from serving.served_data import ServedDataLogger

    clock = Clock(settings)
    materializer = Materializer(settings, store=store)
    predictor = Predictor(settings, store=store)
    model = request_model(*known_codes(settings.raw_dir))
    served = ServedDataLogger(settings, writer_id=WRITER)
    counts: dict[date, int] = {}
    try:
        for day in days:
            now = _midnight(day)
            materializer.run(now=now, wait_seconds=30)
            clock.set(now)
            flights = [model(**f) for f in scheduled_flights(day)]
            champion = predictor.champion
            for i in range(0, len(flights), BATCH):
                chunk = flights[i : i + BATCH]
                scored = predictor.score(chunk)
                served.log(
                    chunk,
                    scored.features,
                    champion.model_inputs,
                    scored.probabilities,
                    scored.served_at,
                    champion.tag,
                )
            counts[day] = len(flights)
    finally:
        served.close()
        predictor.close()
    assert served.dropped == 0
    return counts


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    from feature_repo.pipeline import ingest
    from feature_repo.store import apply_definitions, open_store
    from training.promotion import GateConfig, promote
    from training.train import TrainConfig, train_and_register

    data = tmp_path_factory.mktemp("monitoring-replay")
    settings = Settings(data_dir=data)
    with pytest.MonkeyPatch.context() as env:
        # Restored afterwards: Feast's definitions and BentoML read these process-wide.
        env.setenv("FEASTLINE_DATA_DIR", str(data))
        env.setenv("BENTOML_HOME", str(settings.bentoml_home))
        env.setenv("FEASTLINE_PROFILE_INTERVAL", "1d")
        env.delenv("FEASTLINE_NOW", raising=False)
        ingest(settings, INGEST_THROUGH)
        store = open_store(settings)
        apply_definitions(store, settings)
        config = TrainConfig(
            train_start=date(2013, 1, 1),
            train_end=date(2013, 4, 30),
            valid_end=date(2013, 5, 31),
            seed=13,
            param_grid=TINY_GRID,
            cv_splits=2,
        )
        run = train_and_register(settings, config, store=store)
        promote(settings, run.record.tag, GateConfig(), force=True, reason="monitoring replay")
        reference = _reference_profile(settings, run)
        served = _replay(settings, store, [*JULY, *SEPTEMBER])
        yield Replayed(
            settings=settings,
            store=store,
            tag=run.record.tag,
            metadata=dict(run.record.metadata),
            reference=reference,
            inputs=list(run.trained.inputs.columns),
            served=served,
        )


def _day_profiles(settings: Settings, days: list[date]) -> Profile:
    from monitoring.intervals import stamp
    from monitoring.layout import profiles_dir

    folder = profiles_dir(settings)
    return read_profiles(folder / f"profile-{stamp(_midnight(d))}-{WRITER}.bin" for d in days)


def _verdict_columns(reference: Profile, target: Profile) -> list[str]:
    shared = set(reference.columns) & set(target.columns)
    return sorted(shared - set(ABSOLUTE_TIME))


def _described(reference: Profile) -> str:
    start, end = reference.window
    span = f"{start:%Y-%m-%d}..{end:%Y-%m-%d}" if start and end else "unknown window"
    return f"reference ({span}, {reference.rows:,} rows)"


def _show(title: str, result: DriftResult) -> None:
    from monitoring.report import drift_table, summary_line

    console.print()
    console.print(drift_table(result, title=title))
    console.print(summary_line(result))


def test_every_served_flight_is_in_its_days_profile(replayed: Replayed) -> None:
    for day, flights in replayed.served.items():
        profile = _day_profiles(replayed.settings, [day])
        assert profile.rows == flights > 500
        assert profile.window == (_midnight(day), _midnight(day) + timedelta(days=1))
        # Served profiles hold the model's inputs and its output, nothing else.
        assert set(profile.columns) == {*replayed.inputs, PROBABILITY}


def _calibrated(replayed: Replayed) -> tuple[Profile, Calibration]:
    """The champion's reference and the calibration training wrote beside it."""
    from monitoring.calibration import null_path, read_calibration

    return read_profile(replayed.reference), read_calibration(null_path(replayed.reference))


def test_july_drifts_on_weather_and_the_prediction_moves(replayed: Replayed) -> None:
    reference, calibration = _calibrated(replayed)
    july = _day_profiles(replayed.settings, JULY)
    result = compare(reference, july, calibration=calibration)
    _show(f"{_described(reference)} vs served 2013-07-08..14", result)
    assert result.failed and result.calibrated_days == 7
    drifted = {c.column for c in result.drifted}
    assert {"weather_hourly__temp_f", "weather_hourly__dewpoint_f"} <= drifted
    # The model's output has its own line: a July week moves it more than a typical
    # week of the reference period does (its null's median for 7-day windows).
    prediction = result.prediction
    assert prediction is not None and prediction.column == PROBABILITY
    assert prediction.psi is not None
    assert prediction.psi > sorted(calibration.nulls[PROBABILITY][7]["psi"])[72]
    # The month moves by construction: found by the calibration, shown, not judged.
    month = next(c for c in result.columns if c.column == ABSOLUTE_TIME[0])
    assert not month.judged and not month.drifted and (month.psi or 0) > 1
    # Without a calibration, the fixed thresholds flag the prediction as well.
    fixed = compare(reference, july, DriftPolicy(), columns=_verdict_columns(reference, july))
    assert PROBABILITY in {c.column for c in fixed.drifted}


def test_late_september_is_compared_too(replayed: Replayed) -> None:
    reference, calibration = _calibrated(replayed)
    september = _day_profiles(replayed.settings, SEPTEMBER)
    result = compare(reference, september, calibration=calibration)
    _show(f"{_described(reference)} vs served 2013-09-20..26", result)
    assert len(result.columns) == len(set(reference.columns) & set(september.columns))
    assert "weather_hourly__temp_f" in {c.column for c in result.drifted}


def test_random_halves_of_the_july_week_do_not_drift(replayed: Replayed) -> None:
    from monitoring.layout import served_features_dir
    from monitoring.served_features import read_served_features

    folder = served_features_dir(replayed.settings)
    rows = read_served_features(folder, _midnight(JULY[0]), _midnight(JULY[-1] + timedelta(1)))
    assert len(rows) == sum(replayed.served[d] for d in JULY)
    columns = [*replayed.inputs, PROBABILITY]
    mask = np.random.default_rng(2013).random(len(rows)) < 0.5
    half_a = profile_frame(rows.loc[mask, columns])
    half_b = profile_frame(rows.loc[~mask, columns])
    result = compare(half_a, half_b, DriftPolicy(), columns=_verdict_columns(half_a, half_b))
    _show("control: random halves of the served July week", result)
    assert result.drift_share <= 0.05, [c.column for c in result.drifted]
    assert not result.failed


def test_compare_cli_finds_the_champions_reference(replayed: Replayed, tmp_path: Path) -> None:
    from monitoring.intervals import stamp

    folder = replayed.settings.monitoring_dir / "profiles"
    july = [folder / f"profile-{stamp(_midnight(d))}-{WRITER}.bin" for d in JULY]
    out = tmp_path / "drift"
    args = ["compare", "--data-dir", replayed.settings.data_dir, "--target", *july]
    args += ["--out", out, "--no-html"]
    code = cli.main([str(a) for a in args])
    assert code == cli.EXIT_DRIFT
    report = json.loads((out / "drift.json").read_text())
    assert report["model_tag"] == replayed.tag
    assert report["reference"] == str(replayed.reference)
    # The calibration beside the registry's reference is found and used.
    assert report["calibrated_days"] == 7 and report["calibration"].endswith(".null.json")
    month = next(c for c in report["columns"] if c["column"] == ABSOLUTE_TIME[0])
    assert month["judged"] is False


# -- training/serving skew -------------------------------------------------------------------
def _skew(settings: Settings, out: Path, *extra: object) -> tuple[int, dict[str, Any]]:
    args = ["skew", "--data-dir", settings.data_dir, "--out", out, *extra]
    code = cli.main([str(a) for a in args])
    return code, json.loads((out / "skew.json").read_text())


def test_the_replay_has_no_training_serving_skew(replayed: Replayed, tmp_path: Path) -> None:
    window = ["--window", JULY[0].isoformat(), (SEPTEMBER[-1] + timedelta(days=1)).isoformat()]
    code, report = _skew(replayed.settings, tmp_path, "--sample", 600, "--seed", 3, *window)
    assert report["sampled_rows"] == 600
    assert report["available_rows"] == sum(replayed.served.values())
    assert report["values_compared"] >= 600 * 25
    assert report["mismatches"] == 0, [c for c in report["columns"] if c["mismatches"]]
    assert code == cli.EXIT_OK


def test_an_altered_online_value_is_detected(replayed: Replayed, tmp_path: Path) -> None:
    """Overwrite EWR's weather in the online store through Feast, serve EWR flights again."""
    from feature_repo.clock import Clock
    from feature_repo.flights.requests import known_codes, request_model, scheduled_flights
    from serving.predictor import Predictor
    from serving.served_data import ServedDataLogger

    settings, store = replayed.settings, replayed.store
    day = SEPTEMBER[-1]
    assert Clock(settings).now().instant == _midnight(day)
    view = store.get_feature_view("weather_hourly")
    names = [f.name for f in view.features]
    online = store.get_online_features(
        features=[f"weather_hourly:{n}" for n in names], entity_rows=[{"origin": "EWR"}]
    ).to_dict(include_event_timestamps=True)
    written = datetime.fromtimestamp(online["temp_f__ts"][0], UTC)
    original = {n: online[n][0] for n in names}
    assert original["temp_f"] is not None
    altered = dict(original, temp_f=original["temp_f"] + 25.0)

    def write(values: dict[str, Any]) -> None:
        row = {"origin": ["EWR"], **{n: [v] for n, v in values.items()}}
        frame = pd.DataFrame(row).assign(event_timestamp=written, created=written)
        store.write_to_online_store("weather_hourly", frame)

    write(altered)
    elsewhere = Settings(data_dir=tmp_path / "altered")  # only its monitoring folder is used
    model = request_model(*known_codes(settings.raw_dir))
    flights = [model(**f) for f in scheduled_flights(day) if f["origin"] == "EWR"][:200]
    predictor = Predictor(settings, store=store)
    served = ServedDataLogger(elsewhere, writer_id="altered")
    try:
        scored = predictor.score(flights)
        champion = predictor.champion
        served.log(
            flights,
            scored.features,
            champion.model_inputs,
            scored.probabilities,
            scored.served_at,
            champion.tag,
        )
    finally:
        served.close()
        predictor.close()
        write(original)
    assert set(scored.features["weather_hourly__temp_f"]) == {altered["temp_f"]}

    served_dir = elsewhere.monitoring_dir / "served_features"
    code, report = _skew(settings, tmp_path / "skew", "--served-dir", served_dir, "--sample", 1000)
    assert code == cli.EXIT_DRIFT
    columns = {c["column"]: c for c in report["columns"]}
    temp = columns["weather_hourly__temp_f"]
    assert temp["mismatches"] == len(flights) == report["rows_with_mismatch"]
    assert temp["max_abs_diff"] == pytest.approx(25.0)
    assert temp["examples"][0]["served"] == pytest.approx(altered["temp_f"])
    assert temp["examples"][0]["offline"] == pytest.approx(original["temp_f"])
    others = {n: c["mismatches"] for n, c in columns.items() if n != temp["column"]}
    assert set(others.values()) == {0}, others


# -- delayed labels ----------------------------------------------------------------------------
def _labelled(settings: Settings, start: date, end: date, now: datetime) -> pd.DataFrame:
    """The join done independently: logged predictions and arrivals knowable at ``now``."""
    from monitoring.layout import predictions_dir
    from monitoring.predictions import read_predictions

    predictions = read_predictions(predictions_dir(settings), _midnight(start), _midnight(end))
    files = sorted(str(p) for p in (settings.raw_dir / "arrivals").glob("date=*/part-0.parquet"))
    arrivals = duckdb.execute(
        "SELECT flight_id, arr_delay FROM read_parquet($files) "
        "WHERE knowable_at <= $now AND arr_delay IS NOT NULL",
        {"files": files, "now": now},
    ).df()
    return predictions.merge(arrivals, on="flight_id")


def _performance(settings: Settings, out: Path, *args: object) -> tuple[int, dict[str, Any]]:
    argv = ["performance", "--data-dir", settings.data_dir, "--out", out, *args]
    code = cli.main([str(a) for a in argv])
    return code, json.loads((out / "performance.json").read_text())


def test_performance_on_the_july_week_with_known_outcomes(
    replayed: Replayed, tmp_path: Path
) -> None:
    from monitoring.registry import model_info

    now = _midnight(SEPTEMBER[-1])  # where the replay left the clock
    end = JULY[-1] + timedelta(days=1)
    alerts = tmp_path / "alerts.jsonl"
    code, report = _performance(
        replayed.settings, tmp_path, "--window", JULY[0], end, "--alert-jsonl", alerts
    )
    (model,) = report["models"]
    assert model["model_tag"] == replayed.tag
    info = model_info(replayed.settings, replayed.tag)
    assert model["threshold"] == pytest.approx(info.threshold)
    assert model["validation"]["roc_auc"] == pytest.approx(info.validation_metrics["roc_auc"])
    assert [w["label"] for w in model["windows"]] == [d.isoformat() for d in JULY]

    joined = _labelled(replayed.settings, JULY[0], end, now)
    y = (joined["arr_delay"] > 15).astype(int)
    overall = model["overall"]
    assert overall["predictions"] == sum(replayed.served[d] for d in JULY)
    assert overall["labelled"] == len(joined)
    assert overall["positives"] == int(y.sum())
    assert overall["roc_auc"] == pytest.approx(roc_auc_score(y, joined["probability"]), abs=1e-6)
    predicted = joined["probability"] >= info.threshold
    assert overall["recall"] == pytest.approx((predicted & (y == 1)).sum() / y.sum(), abs=1e-6)

    expected = [
        m for m in ("roc_auc", "precision", "recall") if overall[m] < model["validation"][m] - 0.05
    ]
    assert overall["degraded"] == expected
    assert report["failed"] == bool(expected)
    assert code == (cli.EXIT_DRIFT if expected else cli.EXIT_OK)
    if expected:
        (line,) = alerts.read_text().splitlines()
        alert = json.loads(line)
        assert alert["kind"] == "performance" and alert["model_tag"] == replayed.tag
        assert {d["metric"] for d in alert["degraded"]} == set(expected)
    else:
        assert not alerts.exists()


def test_performance_only_sees_outcomes_knowable_at_now(
    replayed: Replayed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = _midnight(JULY[2])
    monkeypatch.setenv("FEASTLINE_NOW", now.isoformat())
    _, report = _performance(
        replayed.settings, tmp_path, "--window", JULY[0], JULY[-1] + timedelta(days=1)
    )
    windows = {w["label"]: w for w in report["models"][0]["windows"]}
    assert report["now"] == now.isoformat()
    # Flights of the first day have landed by now; those of the fourth day have not flown.
    assert windows[JULY[0].isoformat()]["labelled"] > 0.9 * replayed.served[JULY[0]]
    assert all(windows[d.isoformat()]["labelled"] == 0 for d in JULY[3:])
    assert report["models"][0]["overall"]["labelled"] == len(
        _labelled(replayed.settings, JULY[0], JULY[-1] + timedelta(days=1), now)
    )


def test_performance_on_late_september(replayed: Replayed, tmp_path: Path) -> None:
    _, report = _performance(
        replayed.settings,
        tmp_path,
        "--window",
        SEPTEMBER[0],
        SEPTEMBER[-1] + timedelta(days=1),
    )
    windows = report["models"][0]["windows"]
    assert [w["label"] for w in windows] == [d.isoformat() for d in SEPTEMBER]
    # The clock stands at the last day's midnight: its flights have not flown yet.
    assert windows[-1]["labelled"] == 0 and windows[0]["labelled"] > 800
