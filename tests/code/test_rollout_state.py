"""model_registry.rollout and serving.routing: the rollout state and the canary's hash."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from feature_repo.settings import Settings
from model_registry.rollout import (
    Rollout,
    RolloutFileError,
    canary_bucket,
    read_rollout,
    rollout_path,
    write_rollout,
)


def test_the_state_round_trips_and_is_replaced_whole(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert read_rollout(settings) is None
    rollout = Rollout("flight_delay:b", "canary", 10.0, "2013-02-01T00:00:00+00:00")
    write_rollout(settings, rollout)
    assert read_rollout(settings) == rollout
    write_rollout(settings, None)
    assert read_rollout(settings) is None
    # No temporary file is left beside it.
    assert [p.name for p in rollout_path(settings).parent.iterdir()] == ["rollout.json"]


def test_a_damaged_state_file_is_a_clear_error(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    rollout_path(settings).parent.mkdir(parents=True)
    rollout_path(settings).write_text("{not json")
    with pytest.raises(RolloutFileError, match=r"rollout\.json"):
        read_rollout(settings)
    rollout_path(settings).write_text(json.dumps({"challenger": "x", "mode": "blue"}))
    with pytest.raises(RolloutFileError, match="mode"):
        read_rollout(settings)


def test_a_watch_period_ends_the_rollout_by_itself() -> None:
    rollout = Rollout("flight_delay:a", "shadow", until="2013-03-08T00:00:00+00:00")
    assert rollout.active_at(datetime(2013, 3, 7, tzinfo=UTC))
    assert not rollout.active_at(datetime(2013, 3, 8, tzinfo=UTC))


def test_the_canary_share_is_the_percentage_of_flights() -> None:
    keys = [f"id:{day}-{n}" for day in range(30) for n in range(1000)]
    share = sum(canary_bucket(k) < 10 for k in keys) / len(keys)
    assert share == pytest.approx(0.10, abs=0.005)


def test_the_bucket_is_the_same_in_another_process() -> None:
    """Python salts hash() per process; the canary's hash must not depend on that."""
    keys = ["id:1", "id:UA1545-2013-01-01", "fields:{}"]
    code = (
        "import sys, json; from model_registry.rollout import canary_bucket; "
        "print(json.dumps([canary_bucket(k) for k in json.loads(sys.argv[1])]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(keys)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin", "PYTHONPATH": sys.path[0]},
    )
    assert json.loads(out.stdout) == [canary_bucket(k) for k in keys]


def test_a_flight_without_an_id_is_keyed_by_its_fields() -> None:
    from feature_repo.flights.requests import FlightRequest
    from serving.routing import canary_rows, flight_key

    body = dict(origin="EWR", dest="IAH", carrier="UA", sched_dep="2013-02-20T08:00:00-05:00",
                distance=1400.0)  # fmt: skip
    assert flight_key(FlightRequest(**body)) == flight_key(FlightRequest(**body))
    assert flight_key(FlightRequest(**body)) != flight_key(FlightRequest(**body, tailnum="N1"))
    assert flight_key(FlightRequest(**body, flight_id="x")) == "id:x"
    flights = [FlightRequest(**body, flight_id=str(i)) for i in range(2000)]
    chosen = canary_rows(flights, Rollout("t", "canary", 25.0))
    assert 400 < len(chosen) < 600
    assert canary_rows(flights, Rollout("t", "shadow")) == []
