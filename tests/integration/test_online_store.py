"""Materialization into real online stores (Redis and SQLite), checked against offline retrieval."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pytest

from feature_repo.online import OnlineFeatures
from feature_repo.settings import Settings

NOW = datetime(2013, 2, 20, tzinfo=UTC)
SAMPLE = 600


def _settings(base: Settings, redis_url: str | None) -> Settings:
    settings = Settings(data_dir=base.data_dir, redis_url=redis_url)
    if redis_url is None:
        # Tests share one SQLite store; start from an empty one, as Redis tests do.
        (settings.feast_dir / "online_store.db").unlink(missing_ok=True)
    return settings


def _sample_entities(settings: Settings, seed: int = 7) -> pd.DataFrame:
    """Flights of the month before NOW: realistic combinations of every entity key."""
    files = sorted(
        str(p) for p in (settings.raw_dir / "departures").glob("date=2013-0[12]-*/*.parquet")
    )
    frame = duckdb.sql(
        "SELECT origin, dest, carrier, tailnum, distance, sched_dep_utc_offset_min "
        f"FROM read_parquet({files}) WHERE tailnum IS NOT NULL"
    ).df()
    sample = frame.sample(n=SAMPLE, random_state=seed).reset_index(drop=True)
    sample["sched_dep_utc_offset_min"] = sample["sched_dep_utc_offset_min"].astype("int64")
    return sample


def _entity_rows(now: datetime, sample: pd.DataFrame) -> dict[str, list]:
    """Request rows for ``sample``'s flights, scheduled 3 hours after ``now``."""
    sched = int(now.timestamp()) + 3 * 3600
    return {
        "origin": sample["origin"].tolist(),
        "dest": sample["dest"].tolist(),
        "carrier": sample["carrier"].tolist(),
        "tailnum": sample["tailnum"].tolist(),
        "sched_dep_epoch": [sched] * len(sample),
        "sched_dep_utc_offset_min": sample["sched_dep_utc_offset_min"].tolist(),
        "distance": sample["distance"].tolist(),
    }


def _served(store, now: datetime, sample: pd.DataFrame) -> OnlineFeatures:
    """What the online store serves for ``sample`` at ``now`` (TTL applied)."""
    from feature_repo.online import OnlineFeatureReader

    reader = OnlineFeatureReader(store, "flight_delay_v1")
    return reader.read(_entity_rows(now, sample), now.timestamp())


def _online_vs_offline(
    store,
    settings: Settings,
    now: datetime,
    sample: pd.DataFrame,
    served: OnlineFeatures | None = None,
) -> list[str]:
    """Every value served at ``now`` (TTL applied) against point-in-time retrieval at
    ``now``. ``served``: what was read at ``now`` earlier, before the store moved on."""
    from training.dataset import feature_refs

    online = served if served is not None else _served(store, now, sample)
    entity_df = pd.DataFrame(_entity_rows(now, sample))
    entity_df["row"] = range(len(entity_df))
    entity_df["event_timestamp"] = pd.Timestamp(now)
    refs, _ = feature_refs(store, "flight_delay_v1")
    offline = (
        store.get_historical_features(
            entity_df=entity_df,
            features=refs,
            full_feature_names=True,
            filter_by_created_timestamp=True,
        )
        .to_df()
        .sort_values("row")
        .reset_index(drop=True)
    )
    problems = []
    for name, column in online.values.items():
        for i in range(len(sample)):
            value, expected = column[i], offline[name].iloc[i]
            if pd.isna(expected) and value is None:
                continue
            if value is None or pd.isna(expected) or value != pytest.approx(expected, abs=0):
                problems.append(f"row {i} {name}: online={value!r} offline={expected!r}")
    return problems


def _count_non_null(store, sample: pd.DataFrame, now: datetime) -> int:
    from feature_repo.online import OnlineFeatureReader

    reader = OnlineFeatureReader(store, "flight_delay_v1")
    rows = {
        k: sample[k].tolist()
        for k in ("origin", "dest", "carrier", "tailnum", "distance", "sched_dep_utc_offset_min")
    }
    rows["sched_dep_epoch"] = [int(now.timestamp())] * len(sample)
    online = reader.read(rows, now.timestamp())
    return sum(v is not None for column in online.values.values() for v in column)


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["redis", "sqlite"])
def test_online_equals_offline_then_increments_by_a_day(pipeline, main_redis_db, backend) -> None:
    from feature_repo.materialize import Materializer
    from feature_repo.store import open_store

    settings = _settings(pipeline.settings, main_redis_db if backend == "redis" else None)
    store = open_store(settings)
    materializer = Materializer(settings, store=store)
    materializer.state.reset()
    sample = _sample_entities(settings)

    first = materializer.run(now=NOW)
    assert first.rows > 0
    assert _online_vs_offline(store, settings, NOW, sample) == []
    assert _count_non_null(store, sample, NOW) > SAMPLE * 20  # not vacuously equal

    again = materializer.run(now=NOW)
    assert again.rows == 0, again.log_record()

    tomorrow = NOW + timedelta(days=1)
    step = materializer.run(now=tomorrow)
    for view in step.views:
        assert view.window_start > NOW and view.window_end == tomorrow, view
    # Only rows of the new day: e.g. carriers and routes get exactly one new snapshot.
    by_view = {v.view: v.rows for v in step.views}
    assert by_view["carrier_perf_7d"] == 16
    assert by_view["plane_attributes"] == 0
    assert _online_vs_offline(store, settings, tomorrow, sample) == []


def _materialize_cmd(now: datetime, *extra: str) -> list[str]:
    return [sys.executable, "-m", "feature_repo", "materialize", "--now", now.isoformat(), *extra]


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ, FEASTLINE_DATA_DIR=str(settings.data_dir))
    env.pop("FEASTLINE_NOW", None)
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    return env


@pytest.mark.integration
def test_a_held_lock_makes_others_skip_or_wait(pipeline, main_redis_db) -> None:
    from feature_repo.run_lock import run_lock

    settings = _settings(pipeline.settings, main_redis_db)
    lock = run_lock(settings)
    assert lock.acquire(0)
    try:
        skipped = subprocess.run(
            _materialize_cmd(NOW), env=_env(settings), capture_output=True, text=True, timeout=120
        )
        assert skipped.returncode == 75, skipped.stderr
        assert "another materialization is running" in skipped.stdout
        waiting = subprocess.Popen(
            _materialize_cmd(NOW, "--wait", "60"),
            env=_env(settings),
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(8)  # long enough to import Feast and start waiting
        assert waiting.poll() is None, "the waiting run did not wait for the lock"
    finally:
        lock.release()
    out, _ = waiting.communicate(timeout=120)
    assert waiting.returncode == 0
    assert "materialize:" in out


@pytest.mark.integration
def test_two_runs_started_together_never_both_write(pipeline, main_redis_db) -> None:
    settings = _settings(pipeline.settings, main_redis_db)
    runs = [
        subprocess.Popen(
            _materialize_cmd(NOW),
            env=_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=180) for run in runs]
    codes = sorted(run.returncode for run in runs)
    writers = [out for out, _ in outputs if "rows through" in " ".join(out.split())]
    # One wrote; the other skipped on the lock (75) or found the window already done.
    assert len(writers) == 1, outputs
    assert codes in ([0, 0], [0, 75]), outputs
    loser = next(out for out, _ in outputs if "rows through" not in " ".join(out.split()))
    assert "another materialization is running" in loser or "nothing new" in loser


@pytest.mark.integration
def test_a_run_killed_mid_write_is_recovered(pipeline, own_redis) -> None:
    from feature_repo.materialize import Materializer
    from feature_repo.state_files import MaterializationState
    from feature_repo.store import open_store

    settings = _settings(pipeline.settings, own_redis.url)
    MaterializationState(settings).reset()
    scratch = settings.state_dir / "scratch"
    victim = subprocess.Popen(
        _materialize_cmd(NOW),
        env=_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (scratch.exists() and any(scratch.iterdir())):
        assert victim.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    views_done = MaterializationState(settings).views()
    assert len(views_done) < 6, "killed too late: every view had finished"

    store = open_store(settings)
    # The dead run's Redis lease lapses within seconds; wait for it rather than skip.
    result = Materializer(settings, store=store).run(now=NOW, wait_seconds=30)
    assert {v.view for v in result.views} >= {"weather_hourly", "aircraft_last_flight"}
    assert _online_vs_offline(store, settings, NOW, _sample_entities(settings)) == []


@pytest.mark.integration
def test_redis_outage_fails_clearly_and_the_next_run_catches_up(pipeline, own_redis) -> None:
    from feature_repo.materialize import Materializer
    from feature_repo.state_files import MaterializationState
    from feature_repo.store import open_store

    settings = _settings(pipeline.settings, own_redis.url)
    state = MaterializationState(settings)
    state.reset()
    store = open_store(settings)
    Materializer(settings, store=store).run(now=NOW)
    before = state.views()

    own_redis.stop()
    later = NOW + timedelta(days=2)
    failed = subprocess.run(
        _materialize_cmd(later), env=_env(settings), capture_output=True, text=True, timeout=120
    )
    assert failed.returncode == 69
    assert f"cannot reach Redis at {own_redis.url}" in " ".join(failed.stderr.split())
    assert "Traceback" not in failed.stderr + failed.stdout
    assert state.views() == before  # no watermark moved

    own_redis.start()  # no persistence: it comes back empty
    result = Materializer(settings, store=open_store(settings)).run(now=later)
    assert result.rows > 0
    assert _online_vs_offline(store, settings, later, _sample_entities(settings)) == []


@pytest.mark.integration
def test_status_shows_freshness_per_view(pipeline) -> None:
    from feature_repo.materialize import Materializer
    from feature_repo.store import open_store

    settings = _settings(pipeline.settings, None)
    Materializer(settings, store=open_store(settings)).run(now=NOW)
    env = _env(settings) | {"FEASTLINE_NOW": (NOW + timedelta(hours=6)).isoformat()}
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "feature_repo", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for view in ("weather_hourly", "carrier_perf_7d", "aircraft_last_flight"):
        assert view in text
    assert "6.0 h" in text  # carriers' snapshot at NOW, six hours before "now"
    as_json = subprocess.run(
        [sys.executable, "-m", "feature_repo", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    views = {v["view"]: v for v in json.loads(as_json.stdout)["views"]}
    assert views["carrier_perf_7d"]["freshness_seconds"] == 6 * 3600
    assert len(views) == 6


def test_replay_instants_cover_each_day_once() -> None:
    from feature_repo.scheduler import replay_instants

    start, end = datetime(2013, 6, 1, tzinfo=UTC), datetime(2013, 6, 30, tzinfo=UTC)
    ticks = list(replay_instants(start, end, timedelta(days=1)))
    assert ticks[0] == datetime(2013, 6, 2, tzinfo=UTC)
    assert ticks[-1] == datetime(2013, 7, 1, tzinfo=UTC)
    assert len(ticks) == 30
