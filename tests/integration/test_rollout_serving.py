"""Shadow and canary rollout on the real service (``bentoml serve``, two workers) and real Redis.

A private copy of the session's January-February data, with its own Feast
registry, model registry and logs. The challenger is registered under a
second feature service (the same features, another name), so the service
reads the union of two services in one call, as it must when they differ.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest

from feature_repo.flights import FEATURE_SERVICE_NAME
from feature_repo.settings import Settings
from tests.integration.conftest import MAIN_REDIS, free_port
from tests.integration.serving_support import RunningService, running_service
from tests.integration.test_serving import _flights, _train

pytestmark = pytest.mark.integration

NOW = datetime(2013, 2, 20, tzinfo=UTC)
WATCH_SECONDS = 1.0
TWIN_SERVICE = "flight_delay_rollout_twin"
CANARY_FLIGHTS = 5000


@dataclass(frozen=True)
class Setup:
    settings: Settings
    champion: str
    challenger: str


@pytest.fixture(scope="module")
def setup(pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    import redis
    from feast import FeatureService

    from feature_repo.materialize import Materializer
    from feature_repo.store import apply_definitions, open_store
    from training.promotion import GateConfig, promote
    from training.registry import update_model

    source = pipeline.settings
    data = tmp_path_factory.mktemp("rollout")
    for folder in ("raw", "features"):
        shutil.copytree(source.data_dir / folder, data / folder, symlinks=True)
    url = MAIN_REDIS.format(db=5)
    redis.Redis.from_url(url).flushdb()
    settings = Settings(data_dir=data, redis_url=url)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FEASTLINE_DATA_DIR", str(data))
        env.setenv("BENTOML_HOME", str(settings.bentoml_home))
        store = open_store(settings)
        apply_definitions(store, settings)
        service = store.get_feature_service(FEATURE_SERVICE_NAME)
        twin = FeatureService(name=TWIN_SERVICE, features=[])
        twin.feature_view_projections = list(service.feature_view_projections)
        store.apply([twin])
        Materializer(settings, store=store).run(now=NOW, wait_seconds=30)
        champion = _train(settings, store, seed=11, train_end=date(2013, 2, 7))
        promote(settings, champion, GateConfig(), force=True, reason="rollout test")
        challenger = _train(settings, store, seed=12, train_end=date(2013, 2, 12))
        update_model(settings, challenger, metadata={"feature_service": TWIN_SERVICE})
        yield Setup(settings, champion, challenger)
    redis.Redis.from_url(url).flushdb()


def post(client: httpx.Client, flights: list[dict]) -> dict:
    response = client.post("/predict", json={"flights": flights})
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(client: httpx.Client, flights: list[dict], check, seconds: float) -> float:
    """Seconds until 20 requests in a row satisfy ``check`` (both workers answer by then)."""
    began = time.monotonic()
    streak = 0
    while streak < 20:
        assert time.monotonic() - began < seconds, "the rollout change was not picked up"
        streak = streak + 1 if check(post(client, flights[streak % len(flights) :][:1])) else 0
    return time.monotonic() - began


def offline_scores(settings: Settings, tag: str, flights: list[dict]) -> list[float]:
    """The model's point-in-time score of ``flights`` at NOW, from the offline store."""
    from feature_repo.flights.requests import FlightRequest, feature_rows
    from feature_repo.store import open_store
    from serving.champion import load_champion

    model = load_champion(settings, tag)
    entity = pd.DataFrame(feature_rows([FlightRequest(**f) for f in flights]))
    entity["row"] = range(len(entity))
    entity["event_timestamp"] = pd.Timestamp(NOW)
    store = open_store(settings)
    offline = (
        store.get_historical_features(
            entity_df=entity,
            features=store.get_feature_service(model.feature_service),
            full_feature_names=True,
        )
        .to_df()
        .sort_values("row")
        .reset_index(drop=True)
    )
    return model.pipeline.predict_proba(offline[model.model_inputs])[:, 1].tolist()


class Traffic(threading.Thread):
    """Requests sent back to back while the rollout changes: every answer is kept."""

    def __init__(self, url: str, flights: list[dict]) -> None:
        super().__init__(daemon=True)
        self.url, self.flights = url, flights
        self.answers: list[tuple[int, dict | str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        sizes = [1, 5, 1, 20]
        with httpx.Client(base_url=self.url, timeout=30) as client:
            i = 0
            while not self.stop.is_set():
                size = sizes[i % len(sizes)]
                chunk = [self.flights[(i * 7 + k) % len(self.flights)] for k in range(size)]
                try:
                    response = client.post("/predict", json={"flights": chunk})
                    body = response.json() if response.status_code == 200 else response.text
                    self.answers.append((response.status_code, body))
                except httpx.HTTPError as err:
                    self.answers.append((0, str(err)))
                i += 1


def test_shadow_canary_and_stop_on_the_real_service(setup: Setup, tmp_path: Path) -> None:
    from model_registry.rollout import answered_by_challenger
    from monitoring import layout
    from monitoring.predictions import read_predictions
    from serving.routing import flight_key
    from training import rollout

    settings = setup.settings
    flights = _flights(settings, 300 + 300 + CANARY_FLIGHTS, seed=5)
    warm, shadowed, canary = flights[:300], flights[300:600], flights[600:]
    assert len({f["flight_id"] for f in flights}) == len(flights)
    env = {
        "FEASTLINE_NOW": NOW.isoformat(),
        "FEASTLINE_RELOAD_CHECK_SECONDS": str(WATCH_SECONDS),
        "FEASTLINE_PROFILE_INTERVAL": "1h",
        "FEASTLINE_DATA_DIR": str(settings.data_dir),
    }
    port = free_port()
    with running_service(settings, port, tmp_path / "service.log", workers=2, extra_env=env) as svc:
        svc: RunningService
        with httpx.Client(base_url=svc.url, timeout=30) as client:
            before = {}
            for i in range(0, len(warm), 50):
                for p in post(client, warm[i : i + 50])["predictions"]:
                    assert (p["model_tag"], p["role"]) == (setup.champion, "champion")
                    before[p["flight_id"]] = p["late_probability"]

            # Shadow, switched on while requests flow.
            traffic = Traffic(svc.url, warm)
            traffic.start()
            while len(traffic.answers) < 10:  # requests flow before the switch
                time.sleep(0.05)
            rollout.start(settings, setup.challenger, "shadow", reason="integration test")
            took = wait_for(client, warm, lambda b: b["challenger"] is not None, 30)
            time.sleep(1.0)
            traffic.stop.set()
            traffic.join(30)
            failed = [a for a in traffic.answers if a[0] != 200]
            assert not failed, failed[:3]
            bodies = [b for _, b in traffic.answers]
            assert any(b["challenger"] is None for b in bodies)  # traffic spanned the switch
            assert any(b["challenger"] == {"tag": setup.challenger, "role": "shadow"}
                       for b in bodies)  # fmt: skip
            for body in bodies:
                for p in body["predictions"]:
                    assert p["late_probability"] == before[p["flight_id"]]  # bit for bit
                    assert (p["model_tag"], p["role"]) == (setup.champion, "champion")
            assert took < 2 * WATCH_SECONDS + 13  # the watch period, and 20 requests
            for i in range(0, len(shadowed), 50):
                body = post(client, shadowed[i : i + 50])
                assert body["challenger"] == {"tag": setup.challenger, "role": "shadow"}
                assert {p["role"] for p in body["predictions"]} == {"champion"}
            model = client.post("/model", json={}).json()
            assert model["challenger"]["tag"] == setup.challenger
            assert model["challenger"]["feature_service"] == TWIN_SERVICE

            # Canary at 10%: a hash of the flight picks the model, on either worker.
            rollout.start(settings, setup.challenger, "canary", 10.0)
            wait_for(client, warm, lambda b: b["challenger"]["role"] == "canary", 30)
            first: dict[str, str] = {}
            for i in range(0, len(canary), 100):
                for p in post(client, canary[i : i + 100])["predictions"]:
                    first[p["flight_id"]] = p["role"]
            assert len(first) == CANARY_FLIGHTS
            share = sum(role == "canary" for role in first.values()) / CANARY_FLIGHTS
            assert 0.08 <= share <= 0.12, share
            from feature_repo.flights.requests import FlightRequest

            expected = {
                f["flight_id"]: answered_by_challenger(flight_key(FlightRequest(**f)), 10.0)
                for f in canary
            }
            assert {k: v == "canary" for k, v in first.items()} == expected
            for flight in canary[:200]:  # again, one by one, so both workers answer some
                (p,) = post(client, [flight])["predictions"]
                assert p["role"] == first[flight["flight_id"]]
                tag = setup.challenger if p["role"] == "canary" else setup.champion
                assert p["model_tag"] == tag

            # --stop: the champion answers everything again.
            rollout.stop(settings)
            wait_for(client, warm, lambda b: b["challenger"] is None, 30)
            for i in range(0, len(canary), 250):
                body = post(client, canary[i : i + 250])
                assert {p["role"] for p in body["predictions"]} == {"champion"}
            again = post(client, warm[:50])["predictions"]
            assert all(p["late_probability"] == before[p["flight_id"]] for p in again)

    # After a clean shutdown: both models' probabilities for every shadowed flight,
    # each equal to that model's offline point-in-time score.
    logged = read_predictions(layout.predictions_dir(settings))
    rows = logged[logged["flight_id"].isin({f["flight_id"] for f in shadowed})]
    assert len(rows) == 2 * len(shadowed)
    for tag, role in ((setup.champion, "champion"), (setup.challenger, "shadow")):
        mine = rows[(rows["model_tag"] == tag) & (rows["role"] == role)].set_index("flight_id")
        assert len(mine) == len(shadowed)
        offline = offline_scores(settings, tag, shadowed)
        served = mine.loc[[f["flight_id"] for f in shadowed], "probability"].tolist()
        assert max(abs(a - b) for a, b in zip(served, offline, strict=True)) <= 1e-9
    canary_rows = logged[logged["flight_id"].isin(set(first)) & (logged["role"] == "canary")]
    assert set(canary_rows["model_tag"]) == {setup.challenger}
    assert set(canary_rows["flight_id"]) == set(first)  # scored by both, whoever answered
    # Served-data profiles stay per model: the challenger's are its own.
    assert list(layout.challenger_profiles_dir(settings, setup.challenger).glob("*.bin"))
    assert list(layout.profiles_dir(settings).glob("profile-*.bin"))
