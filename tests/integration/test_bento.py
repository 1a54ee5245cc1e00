"""The Bento: `bentoml build` with no data directory, then `bentoml serve <bento>` answers
exactly as `python -m serving serve` does, on the same registry and online store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from feature_repo.settings import PROJECT_ROOT, Settings
from serving import process as service_process
from tests.integration.conftest import MAIN_REDIS, free_port
from tests.integration.test_serving import _flights, _promote, _train

NOW = datetime(2013, 2, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def served_settings(pipeline) -> Iterator[Settings]:
    """The session's data on Redis db 7, materialized through NOW, with a champion."""
    import redis

    from feature_repo.materialize import Materializer
    from feature_repo.store import open_store

    url = MAIN_REDIS.format(db=7)
    redis.Redis.from_url(url).flushdb()
    settings = Settings(data_dir=pipeline.settings.data_dir, redis_url=url)
    store = open_store(settings)
    materializer = Materializer(settings, store=store)
    materializer.state.reset()
    materializer.run(now=NOW)
    _promote(settings, _train(settings, store, seed=13, train_end=date(2013, 2, 7)))
    yield settings
    redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`bentoml build` into a private BENTOML_HOME, with a data directory that does not
    exist: building must not need (or create) one. Returns (BENTOML_HOME, tag)."""
    root = tmp_path_factory.mktemp("bento")
    home, no_data = root / "home", root / "no-data"
    env = dict(os.environ, BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="True")
    env["FEASTLINE_DATA_DIR"] = str(no_data)
    env.pop("REDIS_URL", None)
    built = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "--output", "tag", str(PROJECT_ROOT)],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    tag = built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    assert tag.startswith("flight_delay_service:"), built.stdout
    assert not no_data.exists(), "bentoml build touched the data directory"
    return home, tag


@contextmanager
def _serving(command: list[str], env: dict[str, str], cwd: Path, port: int, log: Path):
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        child = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        service_process.wait_ready(url, child, 180, log)
        yield url
    finally:
        service_process.stop(child)


def _answers(url: str, requests: list[tuple[str, object]]) -> list[tuple[int, object]]:
    answers = []
    for route, body in requests:
        response = httpx.post(f"{url}{route}", json=body, timeout=60)
        answers.append((response.status_code, response.json()))
    return answers


@pytest.mark.integration
def test_the_bento_answers_exactly_as_python_m_serving_serve(
    served_settings: Settings, bento: tuple[Path, str], tmp_path: Path
) -> None:
    home, tag = bento
    flights = _flights(served_settings, 30, seed=21)
    unknown_airport = dict(flights[0], origin="XXX")
    no_offset = dict(flights[0], sched_dep="2013-02-21T10:00:00")
    requests: list[tuple[str, object]] = [
        ("/predict", {"flights": flights}),
        ("/predict", {"flights": flights[:1]}),
        ("/predict", {"flights": [unknown_airport]}),
        ("/predict", {"flights": [no_offset]}),
        ("/predict", {"flights": []}),
        ("/model", {}),
    ]
    extra = {"FEASTLINE_NOW": NOW.isoformat(), "FEASTLINE_PROFILING": "off"}
    env = service_process.service_env(served_settings, workers=1, extra=extra)

    port = free_port()
    cli = [sys.executable, "-m", "serving", "serve", "--port", str(port), "--workers", "1"]
    with _serving(cli, env, PROJECT_ROOT, port, tmp_path / "cli.log") as url:
        expected = _answers(url, requests)

    # The Bento runs its own copy of the code, from its own home, not this checkout.
    bento_env = dict(env, BENTOML_HOME=str(home))
    bento_env.pop("PYTHONPATH", None)
    port = free_port()
    serve = [sys.executable, "-m", "bentoml", "serve", tag, "--port", str(port)]
    with _serving(serve, bento_env, tmp_path, port, tmp_path / "bento.log") as url:
        got = _answers(url, requests)

    assert [status for status, _ in expected] == [200, 200, 400, 400, 400, 200]
    assert expected[0][1]["predictions"][0]["late_probability"] > 0
    for (route, _), want, have in zip(requests, expected, got, strict=True):
        assert have == want, f"{route}: {json.dumps(have)[:500]} != {json.dumps(want)[:500]}"


@pytest.mark.integration
def test_importing_the_service_reads_no_data_and_binds_loopback(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    env = dict(os.environ, FEASTLINE_DATA_DIR=str(missing), BENTOML_DO_NOT_TRACK="True")
    env["BENTOML_HOME"] = str(tmp_path / "home")
    env.pop("FEASTLINE_SERVING_HOST", None)
    code = (
        "import serving.service as s; "
        "print(s.FlightDelayService.name, s.FlightDelayService.config['http']['host'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "flight_delay 127.0.0.1"
    assert not missing.exists()
