"""Real servers for integration tests: the machine's Redis, and throwaway ones we own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from feature_repo.settings import Settings
from tests.redis_server import OwnRedis
from tests.redis_server import free_port as free_port  # the tests import it from here

# The machine's Redis, which .ci/run starts. FEASTLINE_TEST_REDIS_PORT points the tests
# at another server, so that two checkouts can run their suites side by side.
MAIN_REDIS_PORT = int(os.environ.get("FEASTLINE_TEST_REDIS_PORT", "6379"))
MAIN_REDIS = f"redis://127.0.0.1:{MAIN_REDIS_PORT}/{{db}}"


@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def main_redis_db() -> Iterator[str]:
    """A flushed database on the machine's Redis (MAIN_REDIS), which .ci/run starts."""
    url = MAIN_REDIS.format(db=3)
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as err:
        pytest.fail(f"Redis is not running at {url} ({err}); .ci/run starts it")
    client.flushdb()
    yield url
    client.flushdb()


@pytest.fixture(scope="session")
def lifecycle_base(pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The session's data with a champion fitted through February 14: the loop's start."""
    from tests.integration.lifecycle_support import prepare_base

    data = tmp_path_factory.mktemp("lifecycle") / "base"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FEASTLINE_DATA_DIR", str(data))
        env.setenv("BENTOML_HOME", str(data / "bentoml"))
        yield prepare_base(pipeline.settings, data)
