"""The online store on a real Redis Cluster (3 masters, 3 replicas): materialization,
online-equals-offline parity, the service, and a master failover under load."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from feature_repo.settings import Settings
from tests.integration.conftest import free_port
from tests.integration.redis_cluster import LocalRedisCluster
from tests.integration.serving_support import running_service
from tests.integration.test_online_store import _online_vs_offline, _sample_entities
from tests.integration.test_serving import _flights, _promote, _train

NOW = datetime(2013, 2, 20, tzinfo=UTC)
# How long requests may fail while a replica takes over: the cluster's node timeout
# (1 s) before the master is marked failed, the replica's election delay (0.5-1.5 s),
# and the client's bounded retries. Measured: about 2 to 4 s.
MAX_OUTAGE_SECONDS = 8.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    local = LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def cluster_settings(pipeline, cluster: LocalRedisCluster) -> Settings:
    """The session's data, with the online store on the cluster (as REDIS_URL,
    FEASTLINE_REDIS_TYPE and FEASTLINE_REDIS_STARTUP_NODES would configure it)."""
    return Settings(
        data_dir=pipeline.settings.data_dir,
        redis_url=cluster.url,
        redis_type="redis_cluster",
        redis_startup_nodes=tuple(cluster.startup_nodes.split(",")),
    )


@pytest.fixture(scope="module")
def materialized(cluster_settings: Settings):
    """The cluster materialized through NOW; returns the store."""
    from feature_repo.materialize import Materializer
    from feature_repo.store import open_store

    store = open_store(cluster_settings)
    materializer = Materializer(cluster_settings, store=store)
    materializer.state.reset()
    result = materializer.run(now=NOW)
    assert result.rows > 0
    return store


@pytest.mark.integration
def test_feast_config_names_the_cluster(cluster_settings: Settings, cluster) -> None:
    from feature_repo.store import repo_config_dict

    online = repo_config_dict(cluster_settings)["online_store"]
    assert online["redis_type"] == "redis_cluster"
    nodes = online["connection_string"].split(",")
    assert {n.address for n in cluster.nodes} <= set(nodes)
    assert not any(part.startswith("db=") for part in nodes)


@pytest.mark.integration
def test_materialization_spreads_over_the_masters_and_equals_offline(
    materialized, cluster_settings: Settings, cluster: LocalRedisCluster
) -> None:
    from feature_repo.materialize import Materializer

    store = materialized
    sample = _sample_entities(cluster_settings)
    assert _online_vs_offline(store, cluster_settings, NOW, sample) == []
    masters = [n for n in cluster.live_nodes() if n.role() == "master"]
    assert len(masters) == 3
    keys_per_master = [n.client().dbsize() for n in masters]
    assert min(keys_per_master) > 100, keys_per_master  # sharded, not one node doing it all

    tomorrow = NOW + timedelta(days=1)
    step = Materializer(cluster_settings, store=store).run(now=tomorrow)
    assert {v.view: v.rows for v in step.views}["carrier_perf_7d"] == 16
    assert _online_vs_offline(store, cluster_settings, tomorrow, sample) == []


@dataclass
class Answer:
    sent: float
    done: float
    status: int
    predictions: list | None


def _load(url: str, body: dict, stop: threading.Event, out: list[Answer], pause: float) -> None:
    """One client sending the same request back to back (bounded: one in flight)."""
    with httpx.Client(timeout=15) as client:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                response = client.post(f"{url}/predict", json=body)
                status = response.status_code
                predictions = response.json().get("predictions") if status == 200 else None
            except httpx.HTTPError:
                status, predictions = -1, None
            out.append(Answer(sent, time.monotonic(), status, predictions))
            time.sleep(pause)


@pytest.mark.integration
def test_service_survives_a_master_failover_and_materialization_resumes(
    materialized, cluster_settings: Settings, cluster: LocalRedisCluster, tmp_path: Path
) -> None:
    from feature_repo.materialize import Materializer
    from feature_repo.redis_clients import wait_for_replicas
    from feature_repo.store import open_store

    settings = cluster_settings
    _promote(settings, _train(settings, materialized, seed=5, train_end=date(2013, 2, 7)))
    served_at = NOW + timedelta(days=1)  # what the materialization test above wrote through
    env = {"FEASTLINE_NOW": served_at.isoformat(), "FEASTLINE_RELOAD_CHECK_SECONDS": "0"}
    body = {"flights": _flights(settings, 20)}
    log = tmp_path / "service.log"
    with running_service(settings, free_port(), log, workers=1, extra_env=env) as service:
        baseline = httpx.post(f"{service.url}/predict", json=body, timeout=30)
        assert baseline.status_code == 200, baseline.text
        expected = baseline.json()["predictions"]
        assert len(expected) == 20

        assert wait_for_replicas(settings), "replicas did not catch up before the kill"
        master, replica = cluster.master_with_replica()
        answers: list[Answer] = []
        stop = threading.Event()
        clients = [
            threading.Thread(target=_load, args=(service.url, body, stop, answers, 0.02))
            for _ in range(2)
        ]
        for thread in clients:
            thread.start()
        try:
            time.sleep(2)
            killed_at = time.monotonic()
            master.kill()
            deadline = killed_at + 30
            while replica.role() != "master":
                assert time.monotonic() < deadline, "the replica never took over"
                time.sleep(0.1)
            promoted_at = time.monotonic()
            cluster.wait_healthy()
            time.sleep(4)  # keep serving on the new topology
        finally:
            stop.set()
            for thread in clients:
                thread.join(timeout=30)

        statuses = sorted({a.status for a in answers})
        assert set(statuses) <= {200, 503}, f"statuses {statuses}; log: {service.log()[-3000:]}"
        wrong = [a for a in answers if a.status == 200 and a.predictions != expected]
        assert not wrong, f"{len(wrong)} answers differ from the baseline"
        failed = [a for a in answers if a.status == 503]
        outage = max(a.done for a in failed) - min(a.sent for a in failed) if failed else 0.0
        assert outage <= MAX_OUTAGE_SECONDS, f"503s for {outage:.1f}s"
        assert all(a.sent >= killed_at - 0.5 for a in failed), "503s before the kill"
        after = [a for a in answers if a.sent > promoted_at + 2]
        assert after and all(a.status == 200 for a in after), "no recovery after the failover"
        print(
            f"failover: {len(answers)} requests, {len(failed)} answered 503 over {outage:.1f}s, "
            f"replica promoted {promoted_at - killed_at:.1f}s after the kill"
        )
        assert httpx.get(f"{service.url}/readyz", timeout=5).status_code == 200

    # The next materialization runs on the new topology, and parity holds.
    later = NOW + timedelta(days=2)
    store = open_store(settings)
    result = Materializer(settings, store=store).run(now=later)
    assert result.rows > 0
    assert _online_vs_offline(store, settings, later, _sample_entities(settings)) == []
