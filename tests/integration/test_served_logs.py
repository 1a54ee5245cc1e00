"""The real service's monitoring logs: every served flight is in them after a clean shutdown.

The service (``bentoml serve``, two workers) runs on a private copy of the
session's January-February data with a SQLite online store and a champion
trained here, so no other test's traffic lands in its monitoring folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import httpx
import pandas as pd
import pytest

from feature_repo.settings import Settings
from monitoring import cli
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration

NOW = datetime(2013, 2, 20, tzinfo=UTC)
TINY_GRID = {
    "learning_rate": [0.1],
    "max_leaf_nodes": [15],
    "max_iter": [60],
    "l2_regularization": [1.0],
    "min_samples_leaf": [40],
}
# Uneven request sizes, so that rows reach the writers in many small parts.
REQUEST_SIZES = [1, 1, 3, 7, 20, 50, 1, 64, 2, 1]
WITHOUT_ID = 5


@pytest.fixture(scope="module")
def private_settings(pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The session's raw layer and feature tables, with their own registry, store and logs."""
    from feature_repo.materialize import Materializer
    from feature_repo.store import apply_definitions, open_store
    from tests.conftest import PIPELINE_THROUGH, TRAIN_START
    from training.promotion import GateConfig, promote
    from training.train import TrainConfig, train_and_register

    source = pipeline.settings
    data = tmp_path_factory.mktemp("served-logs")
    for folder in ("raw", "features"):
        shutil.copytree(source.data_dir / folder, data / folder, symlinks=True)
    settings = Settings(data_dir=data)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FEASTLINE_DATA_DIR", str(data))
        env.setenv("BENTOML_HOME", str(settings.bentoml_home))
        store = open_store(settings)
        apply_definitions(store, settings)
        Materializer(settings, store=store).run(now=NOW, wait_seconds=30)
        config = TrainConfig(
            train_start=TRAIN_START,
            train_end=datetime(2013, 2, 7).date(),
            valid_end=PIPELINE_THROUGH,
            seed=5,
            param_grid=TINY_GRID,
            cv_splits=2,
        )
        tag = train_and_register(settings, config, store=store).record.tag
        promote(settings, tag, GateConfig(), force=True, reason="served logs test")
    yield settings


def _flights(settings: Settings, n: int) -> list[dict]:
    files = sorted(
        str(p) for p in (settings.raw_dir / "departures").glob("date=2013-02-2*/*.parquet")
    )
    frame = (
        duckdb.sql(
            "SELECT flight_id, origin, dest, carrier, tailnum, sched_dep_ts, "
            f"sched_dep_utc_offset_min, distance FROM read_parquet({files})"
        )
        .df()
        .sample(n=n, random_state=7)
    )
    flights = []
    for row in frame.itertuples():
        local = timezone(timedelta(minutes=int(row.sched_dep_utc_offset_min)))
        flights.append(
            {
                "origin": row.origin,
                "dest": row.dest,
                "carrier": row.carrier,
                "tailnum": row.tailnum if isinstance(row.tailnum, str) else None,
                "sched_dep": pd.Timestamp(row.sched_dep_ts).tz_convert(local).isoformat(),
                "distance": float(row.distance),
                "flight_id": row.flight_id,
            }
        )
    return flights


def test_profiles_and_logs_hold_every_served_flight_after_a_clean_shutdown(
    private_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from whylogs.core import DatasetProfileView

    from monitoring.layout import predictions_dir, profiles_dir, served_features_dir
    from monitoring.predictions import read_predictions
    from monitoring.profiles import read_profiles
    from monitoring.served_features import read_served_features
    from serving import process as service_process

    settings = private_settings
    flights = _flights(settings, sum(REQUEST_SIZES))
    for flight in flights[:WITHOUT_ID]:
        del flight["flight_id"]  # optional for callers: profiled, but not in the prediction log
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "FEASTLINE_NOW": NOW.isoformat(),
        "FEASTLINE_PROFILE_INTERVAL": "1h",
        "FEASTLINE_PROFILING": "on",
        "FEASTLINE_RELOAD_CHECK_SECONDS": "0",
    }
    log_path = tmp_path / "service.log"
    child = service_process.start(settings, port, log_path, workers=2, extra_env=env)
    served = 0
    try:
        service_process.wait_ready(url, child, 180, log_path)
        with httpx.Client(base_url=url, timeout=30) as client:
            offset = 0
            for size in REQUEST_SIZES:
                response = client.post(
                    "/predict", json={"flights": flights[offset : offset + size]}
                )
                assert response.status_code == 200, response.text
                served += len(response.json()["predictions"])
                offset += size
            metrics = client.get("/metrics").text
            model = client.post("/model", json={}).json()
    finally:
        code = service_process.stop(child)
    assert code == 0, log_path.read_text()[-3000:]
    assert served == len(flights)
    assert "feastline_served_rows_dropped_total 0.0" in metrics
    # Which model, and whether on the fast path: in /model and as metrics.
    assert model["scorer"] == "fast"
    assert f'feastline_model_info{{tag="{model["tag"]}"}} 1.0' in metrics
    assert f'feastline_fast_scoring{{tag="{model["tag"]}"}} 1.0' in metrics

    # Two workers, one file each for the interval; whylogs reads them itself.
    files = sorted(profiles_dir(settings).glob("profile-20130220T000000Z-pid*.bin"))
    assert 1 <= len(files) <= 2
    counted = sum(
        DatasetProfileView.read(str(f)).get_column("probability").get_metric("counts").n.value
        for f in files
    )
    assert counted == served
    profile = read_profiles(files)
    assert profile.rows == served
    assert "flight_id" not in profile.columns and "sched_dep_epoch" not in profile.columns

    predictions = read_predictions(predictions_dir(settings))
    assert len(predictions) == served - WITHOUT_ID
    assert set(predictions["prediction_time"]) == {pd.Timestamp(NOW)}
    rows = read_served_features(served_features_dir(settings))
    assert len(rows) == served
    assert rows["flight_id"].isna().sum() == WITHOUT_ID

    # What the real service logged re-fetches identically from the offline store.
    monkeypatch.setattr(cli, "configure_from_args", lambda *args: None)
    out = tmp_path / "skew"
    code = cli.main(["skew", "--data-dir", str(settings.data_dir), "--out", str(out)])
    report = json.loads((out / "skew.json").read_text())
    assert report["sampled_rows"] == served
    assert report["mismatches"] == 0, [c for c in report["columns"] if c["mismatches"]]
    assert code == cli.EXIT_OK
