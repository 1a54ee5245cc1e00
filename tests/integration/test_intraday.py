"""Fresh features all day, on the real Redis: the scheduled step at any instant, the
freshness check, and online values equal to offline point-in-time values intraday.

Each test works on its own copy of the session's raw layer and feature tables
(published through 2013-02-28), so stepping into March changes nothing shared.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from feature_repo.raw_layer import RawLayer
from feature_repo.settings import Settings
from tests.integration.test_online_store import _online_vs_offline, _sample_entities, _served

DAY = datetime(2013, 3, 1, tzinfo=UTC)
NOON = DAY + timedelta(hours=12)
PERIOD = timedelta(minutes=15)
HOURLY_VIEWS = ("weather_hourly", "origin_congestion_3h", "aircraft_last_flight")


@pytest.fixture()
def intraday(pipeline, main_redis_db, tmp_path, monkeypatch) -> Settings:
    """A data dir of its own (raw + features through Feb 28th), applied, on the real Redis."""
    from feature_repo.pipeline import apply

    for folder in ("raw", "features"):
        shutil.copytree(pipeline.settings.data_dir / folder, tmp_path / folder)
    monkeypatch.setenv("FEASTLINE_DATA_DIR", str(tmp_path))  # the definitions' paths
    monkeypatch.delenv("FEASTLINE_NOW", raising=False)
    settings = Settings(data_dir=tmp_path, redis_url=main_redis_db)
    apply(settings)
    return settings


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ, FEASTLINE_DATA_DIR=str(settings.data_dir), **extra)
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    else:
        env.pop("REDIS_URL", None)
    return env


def _cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "feature_repo", *args],
        env=_env(settings, **env),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _status(settings: Settings, now: datetime) -> tuple[int, dict]:
    result = _cli(settings, "status", "--check", "--json", FEASTLINE_NOW=now.isoformat())
    return result.returncode, json.loads(result.stdout)


@pytest.mark.integration
def test_the_scheduler_at_noon_keeps_hourly_views_within_a_period(intraday) -> None:
    from feature_repo.clock import Clock
    from feature_repo.materialize import Materializer
    from feature_repo.state_files import MaterializationState

    settings = intraday
    Materializer(settings).run(now=DAY)  # the store as of midnight; the morning is missed
    Clock(settings).set(NOON)  # the scheduler's clock: 12:00 on the simulated day
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "feature_repo", "schedule", "--every", "15m"],
        env=_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    state = MaterializationState(settings)
    try:
        deadline = time.monotonic() + 120
        while (state.last_run() or {}).get("now") != NOON.isoformat():
            assert scheduler.poll() is None, scheduler.stderr.read() if scheduler.stderr else ""
            assert time.monotonic() < deadline, "the scheduler's first run did not finish"
            time.sleep(0.2)
    finally:
        scheduler.send_signal(signal.SIGTERM)  # finishes the run in flight, then exits
        scheduler.wait(timeout=60)
    assert scheduler.returncode == 0
    assert state.last_run()["status"] == "ok"
    assert state.schedule()["period_seconds"] == PERIOD.total_seconds()

    code, status = _status(settings, NOON)
    views = {v["view"]: v for v in status["views"]}
    assert code == 0 and status["expired"] == []
    for name in HOURLY_VIEWS:
        assert views[name]["age_seconds"] <= PERIOD.total_seconds(), views[name]
        assert views[name]["watermark"] == NOON.isoformat()
        assert not views[name]["breaks_slo"]
    assert views["carrier_perf_7d"]["age_seconds"] == 12 * 3600  # daily: midnight's snapshot

    # The scheduler stays stopped: within a TTL the check passes, past one it fails.
    code, status = _status(settings, NOON + timedelta(hours=1))
    assert code == 0, status
    code, status = _status(settings, NOON + timedelta(hours=2, minutes=1))
    assert code == 1
    assert set(status["expired"]) == {"weather_hourly", "origin_congestion_3h"}
    text = _cli(
        settings, "status", "--check", FEASTLINE_NOW=(NOON + timedelta(hours=3)).isoformat()
    )
    assert text.returncode == 1
    assert "older than the TTL" in text.stdout


# A stop that arrives as a run ends, before the run has recorded its next one. It
# deadlocked: APScheduler's shutdown(wait=True) joined the run while holding the lock
# the run's get_job() needed (the test above hit it on a loaded machine).
_STOP_AS_A_RUN_ENDS = """
import signal, threading, time, types
from datetime import timedelta
from feature_repo.scheduler import MaterializationScheduler
from feature_repo.settings import Settings

scheduler = MaterializationScheduler.every(Settings.from_env(), timedelta(minutes=15))
ran = []

def run(now=None, **_):
    ran.append(now)
    signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
    time.sleep(1.0)  # the stop gets going before this run's bookkeeping
    return types.SimpleNamespace(rows=0, seconds=0.0)

scheduler.materializer.run = run
scheduler.start()
print("stopped after", len(ran), "run")
"""


@pytest.mark.integration
def test_a_stop_as_a_run_ends_lets_it_finish_and_exits(intraday) -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-c", _STOP_AS_A_RUN_ENDS],
            env=_env(intraday),
            capture_output=True,
            text=True,
            timeout=90,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the scheduler hung after a stop signal that came as its run ended")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stopped after 1 run" in done.stdout


def _landed_before(instant: datetime, within: timedelta) -> pd.DataFrame:
    """Entity rows of flights that landed in ``(instant - within, instant]`` (from the
    source: what the raw layer holds once a step has run at ``instant``)."""
    from feature_repo.flights.source import load_raw_tables

    events = load_raw_tables().events
    arrivals, departures = events["arrivals"][0], events["departures"][0]
    landed = arrivals[
        (arrivals["arr_ts"] > instant - within) & (arrivals["arr_ts"] <= instant)
    ].merge(departures, on="flight_id")
    landed = landed[landed["tailnum"].notna()].sort_values("arr_ts").reset_index(drop=True)
    columns = ["origin", "dest", "carrier", "tailnum", "distance", "sched_dep_utc_offset_min"]
    return landed[[*columns, "arr_ts", "arr_delay"]].astype({"sched_dep_utc_offset_min": "int64"})


@pytest.mark.integration
def test_online_equals_offline_at_intraday_instants(intraday) -> None:
    """At each instant the step runs, then every served value of every view equals
    point-in-time retrieval: at midnight, mid-hour, and just after an observation
    (weather at 09:00) and a landing become knowable."""
    from feature_repo.materialize import Materializer
    from feature_repo.online import OnlineFeatureReader
    from feature_repo.store import open_store

    settings = intraday
    store = open_store(settings)
    materializer = Materializer(settings, store=store)
    views = {view.name for view in materializer.online_views()}
    served_views = {
        name.split("__")[0] for name in OnlineFeatureReader(store, "flight_delay_v1").feature_names
    }
    assert views <= served_views  # every online view is compared, not a sample
    sample = _sample_entities(settings)

    instants = [DAY, DAY + timedelta(hours=5, minutes=37), DAY + timedelta(hours=9, seconds=1)]
    for instant in instants:
        assert materializer.run(now=instant).end == instant
        assert _online_vs_offline(store, settings, instant, sample) == [], instant
    # Just after a landing: the aircraft that landed last is served that landing.
    landing = _landed_before(DAY + timedelta(hours=14), timedelta(hours=1)).iloc[-1]
    just_after = landing["arr_ts"].to_pydatetime() + timedelta(microseconds=1)
    materializer.run(now=just_after)
    landed = _landed_before(just_after, timedelta(hours=2))
    entities = pd.concat([sample, landed.drop(columns=["arr_ts", "arr_delay"])], ignore_index=True)
    assert _online_vs_offline(store, settings, just_after, entities) == []
    reader = OnlineFeatureReader(store, "flight_delay_v1")
    rows = {k: [landing[k]] for k in ("origin", "dest", "carrier", "tailnum", "distance")}
    rows |= {"sched_dep_utc_offset_min": [int(landing["sched_dep_utc_offset_min"])]}
    departs = int(landing["arr_ts"].timestamp()) + 3 * 3600
    rows |= {"sched_dep_epoch": [departs]}
    served = reader.read(rows, just_after.timestamp()).values
    assert served["aircraft_last_flight__arr_delay"][0] == landing["arr_delay"]
    assert served["aircraft_turnaround__hours_since_landed"][0] == pytest.approx(3.0)


def _first_landed_on(day: datetime, before: datetime) -> pd.DataFrame:
    """Entity rows of the flights of routes whose first landing ever is on ``day``,
    before ``before`` (from the source), one per route."""
    from feature_repo.flights.source import load_raw_tables

    events = load_raw_tables().events
    arrivals, departures = events["arrivals"][0], events["departures"][0]
    landed = arrivals.merge(departures, on="flight_id")
    first = landed.sort_values("arr_ts").groupby(["origin", "dest"]).head(1)
    first = first[(first["arr_ts"] >= day) & (first["arr_ts"] < before)]
    first = first[first["tailnum"].notna()]
    columns = ["origin", "dest", "carrier", "tailnum", "distance", "sched_dep_utc_offset_min"]
    return first[columns].astype({"sched_dep_utc_offset_min": "int64"}).reset_index(drop=True)


@pytest.mark.integration
def test_a_route_first_seen_today_is_served_as_training_sees_it(intraday) -> None:
    """A route's first landing ever: what was served that evening equals what
    point-in-time retrieval says about that evening once the next midnight's daily
    snapshots are built (the skew check's view). The daily build then rewrites the
    day; a row stamped at the day's midnight for the new route would be one the
    online store never got (its watermark was past it), so training would see 0
    arrivals where serving saw none."""
    from feature_repo.materialize import Materializer
    from feature_repo.store import open_store

    settings = intraday
    store = open_store(settings)
    materializer = Materializer(settings, store=store)
    day = DAY + timedelta(days=1)
    evening = day + timedelta(hours=20)
    new_routes = _first_landed_on(day, evening)
    assert len(new_routes) >= 2  # in 2013: LGA-CHO at 03:06 and LGA-BGR at 18:01
    sample = pd.concat([_sample_entities(settings).head(100), new_routes], ignore_index=True)

    materializer.run(now=day)
    materializer.run(now=evening)
    served = _served(store, evening, sample)
    materializer.run(now=day + timedelta(days=1, hours=1))  # the next daily snapshots
    assert _online_vs_offline(store, settings, evening, sample, served=served) == []

    # Not vacuous: the next midnight's snapshot counts each new route's landings.
    after = day + timedelta(days=1, hours=1)
    assert _online_vs_offline(store, settings, after, sample) == []
    arrivals = _served(store, after, new_routes).values["route_perf_28d__arrivals"]
    assert all(count is not None and count >= 1 for count in arrivals), arrivals


@pytest.mark.integration
def test_commands_refuse_an_unapplied_data_dir_with_advice(pipeline, tmp_path) -> None:
    """Nothing registered: the replay and materialize fail (they used to print
    "up to date, nothing new to write" and exit 0)."""
    shutil.copytree(pipeline.settings.data_dir / "raw", tmp_path / "raw")
    settings = Settings(data_dir=tmp_path)
    replay = _cli(settings, "schedule", "--replay", "--start", "2013-03-01", "--end", "2013-03-01")
    once = _cli(settings, "materialize", "--now", "2013-03-01T12:00:00")
    for result in (replay, once):
        assert result.returncode == 1, result.stdout + result.stderr
        message = " ".join(result.stderr.split())
        assert "run `python -m feature_repo apply` first" in message, message
        assert "Traceback" not in result.stderr
    assert not (Path(tmp_path) / "state" / "clock.json").exists()  # nothing was replayed
    published = RawLayer(pipeline.settings.raw_dir).published_through()
    assert RawLayer(settings.raw_dir).published_through() == published  # nothing ingested
