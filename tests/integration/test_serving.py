"""The real BentoML service over HTTP, on real Redis: parity, bad input, faults, auth, reload."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from feature_repo.settings import Settings
from tests.integration.conftest import MAIN_REDIS, free_port
from tests.integration.serving_support import RunningService, running_service

NOW = datetime(2013, 2, 20, tzinfo=UTC)
API_KEY = "test-key-3f9a"
MAX_FLIGHTS = 100
HEADERS = {"X-API-Key": API_KEY}
TINY_GRID = {
    "learning_rate": [0.1],
    "max_leaf_nodes": [15],
    "max_iter": [60],
    "l2_regularization": [1.0],
    "min_samples_leaf": [40],
}


def _train(
    settings: Settings, store, seed: int, train_end, train_start=None, valid_end=None
) -> str:
    """A candidate on the session's data: fit from ``train_start`` (January 1st) through
    ``train_end``, validated through ``valid_end`` (the pipeline's last day)."""
    from tests.conftest import PIPELINE_THROUGH, TRAIN_START
    from training.train import TrainConfig, train_and_register

    config = TrainConfig(
        train_start=train_start or TRAIN_START,
        train_end=train_end,
        valid_end=valid_end or PIPELINE_THROUGH,
        seed=seed,
        param_grid=TINY_GRID,
        cv_splits=2,
    )
    return train_and_register(settings, config, store=store).record.tag


def _promote(settings: Settings, tag: str) -> None:
    from training.promotion import GateConfig, promote

    promote(settings, tag, GateConfig(), force=True, reason="integration test")


@pytest.fixture(scope="module")
def redis_settings(pipeline) -> Iterator[Settings]:
    """The session's data on Redis db 4, materialized through NOW, with a champion."""
    import redis

    from feature_repo.materialize import Materializer
    from feature_repo.store import open_store

    url = MAIN_REDIS.format(db=4)
    redis.Redis.from_url(url).flushdb()
    settings = Settings(data_dir=pipeline.settings.data_dir, redis_url=url)
    store = open_store(settings)
    Materializer(settings, store=store).state.reset()
    Materializer(settings, store=store).run(now=NOW)
    from datetime import date

    _promote(settings, _train(settings, store, seed=11, train_end=date(2013, 2, 7)))
    yield settings
    redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="module")
def service(redis_settings, tmp_path_factory) -> Iterator[RunningService]:
    log = tmp_path_factory.mktemp("service") / "service.log"
    env = {
        "FEASTLINE_NOW": NOW.isoformat(),
        "FEASTLINE_API_KEY": API_KEY,
        "FEASTLINE_MAX_FLIGHTS": str(MAX_FLIGHTS),
        "FEASTLINE_RELOAD_CHECK_SECONDS": "1",
    }
    with running_service(redis_settings, free_port(), log, extra_env=env) as running:
        yield running


def _flights(settings: Settings, n: int, seed: int = 3) -> list[dict]:
    files = sorted(
        str(p) for p in (settings.raw_dir / "departures").glob("date=2013-02-2*/*.parquet")
    )
    frame = (
        duckdb.sql(
            "SELECT flight_id, origin, dest, carrier, tailnum, sched_dep_ts, "
            "sched_dep_utc_offset_min, distance "
            f"FROM read_parquet({files}) WHERE tailnum IS NOT NULL"
        )
        .df()
        .sample(n=n, random_state=seed)
    )
    flights = []
    for row in frame.itertuples():
        offset = timedelta(minutes=int(row.sched_dep_utc_offset_min))
        local = (
            pd.Timestamp(row.sched_dep_ts)
            .tz_convert(UTC)
            .to_pydatetime()
            .astimezone(__import__("datetime").timezone(offset))
        )
        flights.append(
            {
                "origin": row.origin,
                "dest": row.dest,
                "carrier": row.carrier,
                "tailnum": row.tailnum,
                "sched_dep": local.isoformat(),
                "distance": float(row.distance),
                "flight_id": row.flight_id,
            }
        )
    return flights


def _post(service: RunningService, body, headers=HEADERS, raw: str | None = None) -> httpx.Response:
    if raw is not None:
        return httpx.post(
            f"{service.url}/predict",
            content=raw,
            timeout=30,
            headers={**headers, "content-type": "application/json"},
        )
    return httpx.post(f"{service.url}/predict", json=body, headers=headers, timeout=30)


@pytest.mark.integration
def test_http_prediction_equals_the_model_on_offline_features(service, redis_settings) -> None:
    from feature_repo.store import open_store
    from serving.champion import load_champion

    flights = _flights(redis_settings, 60)
    response = _post(service, {"flights": flights})
    assert response.status_code == 200, response.text
    served = response.json()
    champion = load_champion(redis_settings)
    assert served["model"]["tag"] == champion.tag

    from feature_repo.flights.requests import FlightRequest, feature_rows

    entity = pd.DataFrame(feature_rows([FlightRequest(**f) for f in flights]))
    entity["row"] = range(len(entity))
    entity["event_timestamp"] = pd.Timestamp(NOW)
    store = open_store(redis_settings)
    offline = (
        store.get_historical_features(
            entity_df=entity,
            features=store.get_feature_service(champion.feature_service),
            full_feature_names=True,
            filter_by_created_timestamp=True,
        )
        .to_df()
        .sort_values("row")
        .reset_index(drop=True)
    )
    expected = champion.pipeline.predict_proba(offline[champion.model_inputs])[:, 1]
    got = [p["late_probability"] for p in served["predictions"]]
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) <= 1e-9
    assert [p["flight_id"] for p in served["predictions"]] == [f["flight_id"] for f in flights]
    assert all(
        p["late"] == (p["late_probability"] >= champion.threshold) for p in served["predictions"]
    )


BAD_INPUTS = {
    "malformed JSON": (None, '{"flights": [', ""),
    "missing field": (
        {"flights": [{"origin": "EWR", "dest": "IAH", "carrier": "UA", "distance": 1400}]},
        None,
        "sched_dep",
    ),
    "extra field": (
        {
            "flights": [
                {
                    "origin": "EWR",
                    "dest": "IAH",
                    "carrier": "UA",
                    "distance": 1,
                    "sched_dep": "2013-02-20T08:00:00-05:00",
                    "gate": "B2",
                }
            ]
        },
        None,
        "gate",
    ),
    "wrong type": (
        {
            "flights": [
                {
                    "origin": "EWR",
                    "dest": "IAH",
                    "carrier": "UA",
                    "distance": "far",
                    "sched_dep": "2013-02-20T08:00:00-05:00",
                }
            ]
        },
        None,
        "distance",
    ),
    "unknown airport": (
        {
            "flights": [
                {
                    "origin": "EWR",
                    "dest": "ZZZ",
                    "carrier": "UA",
                    "distance": 1,
                    "sched_dep": "2013-02-20T08:00:00-05:00",
                }
            ]
        },
        None,
        "dest",
    ),
    "unknown carrier": (
        {
            "flights": [
                {
                    "origin": "EWR",
                    "dest": "IAH",
                    "carrier": "QQ",
                    "distance": 1,
                    "sched_dep": "2013-02-20T08:00:00-05:00",
                }
            ]
        },
        None,
        "carrier",
    ),
    "naive timestamp": (
        {
            "flights": [
                {
                    "origin": "EWR",
                    "dest": "IAH",
                    "carrier": "UA",
                    "distance": 1,
                    "sched_dep": "2013-02-20T08:00:00",
                }
            ]
        },
        None,
        "sched_dep",
    ),
    "empty list": ({"flights": []}, None, "flights"),
    "not a list": ({"flights": {"origin": "EWR"}}, None, "flights"),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_a_4xx_naming_the_field(service, case) -> None:
    body, raw, field = BAD_INPUTS[case]
    response = _post(service, body, raw=raw)
    assert 400 <= response.status_code < 500, response.text
    assert field in response.text


@pytest.mark.integration
def test_too_many_flights_is_refused(service, redis_settings) -> None:
    flight = _flights(redis_settings, 1)[0]
    response = _post(service, {"flights": [flight] * (MAX_FLIGHTS + 1)})
    assert response.status_code == 400
    assert "flights" in response.text and str(MAX_FLIGHTS) in response.text


@pytest.mark.integration
def test_unknown_tail_number_is_scored_and_flagged(service, redis_settings) -> None:
    flight = dict(_flights(redis_settings, 1)[0], tailnum="N0NSENSE")
    response = _post(service, {"flights": [flight]})
    assert response.status_code == 200, response.text
    prediction = response.json()["predictions"][0]
    assert prediction["unknown_aircraft"] is True
    assert "plane_attributes__seats" in prediction["missing_features"]
    assert 0 < prediction["late_probability"] < 1


@pytest.mark.integration
def test_api_key_is_enforced_except_on_health(service, redis_settings) -> None:
    flight = _flights(redis_settings, 1)[0]
    assert _post(service, {"flights": [flight]}, headers={}).status_code == 401
    assert _post(service, {"flights": [flight]}, headers={"X-API-Key": "wrong"}).status_code == 401
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    assert _post(service, {"flights": [flight]}, headers=bearer).status_code == 200
    assert httpx.get(f"{service.url}/metrics", timeout=10).status_code == 401
    assert httpx.get(f"{service.url}/livez", timeout=10).status_code == 200
    assert httpx.get(f"{service.url}/readyz", timeout=10).status_code == 200


@pytest.mark.integration
def test_metrics_count_latency_and_missing_features(service, redis_settings) -> None:
    _post(service, {"flights": [dict(_flights(redis_settings, 1)[0], tailnum="N0NSENSE")]})
    text = httpx.get(f"{service.url}/metrics", headers=HEADERS, timeout=10).text
    assert "feastline_online_feature_seconds_bucket" in text
    assert 'feastline_missing_features_total{feature="plane_attributes__seats"}' in text


@pytest.mark.integration
def test_metrics_export_each_views_freshness(service, redis_settings) -> None:
    """Age of each view's newest online row at the service's "now" (NOW, a midnight:
    the midnight snapshots and observations are current), its TTL, its SLO state."""
    deadline = time.monotonic() + 30  # the gauges refresh every 5 s
    while True:
        text = httpx.get(f"{service.url}/metrics", headers=HEADERS, timeout=10).text
        gauges = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in text.splitlines()
            if line.startswith("feastline_feature_view_")
        }
        if len(gauges) >= 18 or time.monotonic() > deadline:
            break
        time.sleep(1)
    views = ("weather_hourly", "origin_congestion_3h", "carrier_perf_7d", "route_perf_28d")
    for view in views:
        assert gauges[f'feastline_feature_view_age_seconds{{view="{view}"}}'] == 0.0, view
        assert gauges[f'feastline_feature_view_slo_breach{{view="{view}"}}'] == 0.0, view
    assert gauges['feastline_feature_view_ttl_seconds{view="weather_hourly"}'] == 7200.0
    assert gauges['feastline_feature_view_ttl_seconds{view="plane_attributes"}'] == 0.0
    assert len([g for g in gauges if g.startswith("feastline_feature_view_age")]) == 6


@pytest.mark.integration
def test_fuzzed_requests_never_get_a_5xx(service) -> None:
    text = st.text(max_size=12)
    scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text)
    flight = st.fixed_dictionaries(
        {},
        optional={
            "origin": st.one_of(st.sampled_from(["EWR", "JFK", "LGA", "ZZZ"]), scalar),
            "dest": st.one_of(st.sampled_from(["IAH", "ORD", "SJU"]), scalar),
            "carrier": st.one_of(st.sampled_from(["UA", "AA", "B6", "ZZ"]), scalar),
            "tailnum": st.one_of(st.sampled_from(["N14228", "N0NSENSE"]), scalar),
            "sched_dep": st.one_of(
                st.sampled_from(
                    ["2013-02-20T08:00:00-05:00", "2013-02-20", "2013-13-40T99:00:00Z"]
                ),
                scalar,
            ),
            "distance": st.one_of(st.floats(allow_nan=False, allow_infinity=False), scalar),
            "flight_id": scalar,
            "extra": scalar,
        },
    )
    valid = st.fixed_dictionaries(
        {
            "origin": st.sampled_from(["EWR", "JFK", "LGA"]),
            "dest": st.sampled_from(["IAH", "ORD", "SJU", "LAX"]),
            "carrier": st.sampled_from(["UA", "AA", "B6", "DL"]),
            "tailnum": st.one_of(st.none(), st.sampled_from(["N14228", "N0NSENSE", ""])),
            "sched_dep": st.sampled_from(
                ["2013-02-20T08:00:00-05:00", "2013-02-21T23:59:00+00:00"]
            ),
            "distance": st.floats(min_value=1, max_value=5000),
        }
    )
    body = st.one_of(
        st.fixed_dictionaries({"flights": st.lists(valid, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"flights": st.lists(flight, max_size=4)}),
        st.dictionaries(text, scalar, max_size=3),
        scalar,
    )
    statuses: list[int] = []

    @hsettings(
        max_examples=250, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(body)
    def check(payload) -> None:
        response = httpx.post(
            f"{service.url}/predict",
            content=json.dumps(payload),
            headers={**HEADERS, "content-type": "application/json"},
            timeout=30,
        )
        statuses.append(response.status_code)
        assert response.status_code < 500, (payload, response.text)

    check()
    assert len(statuses) == 250
    assert 200 in statuses and any(400 <= s < 500 for s in statuses)


@pytest.mark.integration
def test_a_promoted_champion_is_picked_up_without_a_restart(service, redis_settings) -> None:
    from datetime import date

    from feature_repo.store import open_store

    before = httpx.post(f"{service.url}/model", headers=HEADERS, json={}, timeout=10).json()["tag"]
    new_tag = _train(
        redis_settings, open_store(redis_settings), seed=12, train_end=date(2013, 2, 10)
    )
    _promote(redis_settings, new_tag)
    reloaded = httpx.post(f"{service.url}/reload", headers=HEADERS, json={}, timeout=30).json()
    # Each worker's registry watcher (1 s here) may have reloaded first; either way
    # the new champion is what is served now.
    assert reloaded["current"] == new_tag
    assert reloaded["previous"] in {before, new_tag}
    flight = _flights(redis_settings, 1)[0]
    assert _post(service, {"flights": [flight]}).json()["model"]["tag"] == new_tag


@pytest.mark.integration
def test_redis_outage_gives_503_then_recovers(pipeline, own_redis, tmp_path) -> None:
    from datetime import date

    from feature_repo.materialize import Materializer
    from feature_repo.store import open_store

    settings = Settings(data_dir=pipeline.settings.data_dir, redis_url=own_redis.url)
    Materializer(settings, store=open_store(settings)).run(now=NOW, wait_seconds=30)
    from serving.champion import champion_tag

    try:
        champion_tag(settings)
    except Exception:
        _promote(settings, _train(settings, open_store(settings), 11, date(2013, 2, 7)))
    flight = _flights(settings, 1)[0]
    env = {"FEASTLINE_NOW": NOW.isoformat()}
    with running_service(settings, free_port(), tmp_path / "outage.log", extra_env=env) as svc:
        assert _post(svc, {"flights": [flight]}, headers={}).status_code == 200
        own_redis.stop()
        started = datetime.now(UTC)
        down = _post(svc, {"flights": [flight]}, headers={})
        assert down.status_code == 503
        assert "online features unavailable" in down.text
        assert datetime.now(UTC) - started < timedelta(seconds=10)
        assert httpx.get(f"{svc.url}/readyz", timeout=10).status_code == 503
        own_redis.start()  # empty again: rematerialize, as the scheduler would
        Materializer(settings, store=open_store(settings)).run(now=NOW, wait_seconds=30)
        assert httpx.get(f"{svc.url}/readyz", timeout=10).status_code == 200
        assert _post(svc, {"flights": [flight]}, headers={}).status_code == 200


def test_the_service_refuses_to_start_without_a_model(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {"FEASTLINE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "serving", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "no champion model" in result.stderr and "make run" in " ".join(result.stderr.split())


def test_a_worker_that_cannot_start_fails_the_wait_at_once(pipeline, tmp_path: Path) -> None:
    """``bentoml serve`` itself stays up and restarts a worker whose start-up raised;
    the wait must not sit out its timeout, and must say why."""
    import time

    from serving import process as service_process

    data = tmp_path / "data"
    data.mkdir()
    for part in ("raw", "feast"):  # imports succeed; the registry is empty
        (data / part).symlink_to(getattr(pipeline.settings, f"{part}_dir"))
    settings = Settings(data_dir=data)
    port = free_port()
    log_path = tmp_path / "service.log"
    child = service_process.start(settings, port, log_path, workers=1)
    began = time.monotonic()
    try:
        with pytest.raises(RuntimeError, match=r"failed to start: .*no champion model"):
            service_process.wait_ready(f"http://127.0.0.1:{port}", child, 300, log_path)
        assert time.monotonic() - began < 120
    finally:
        service_process.stop(child)
