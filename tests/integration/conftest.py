"""Real servers for integration tests: the machine's Redis, and throwaway ones we own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from feature_repo.settings import Settings

# The machine's Redis, which .ci/run starts. FEASTLINE_TEST_REDIS_PORT points the tests
# at another server, so that two checkouts can run their suites side by side.
MAIN_REDIS_PORT = int(os.environ.get("FEASTLINE_TEST_REDIS_PORT", "6379"))
MAIN_REDIS = f"redis://127.0.0.1:{MAIN_REDIS_PORT}/{{db}}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_redis(url: str, up: bool, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=0.2).ping()
            if up:
                return
        except redis.exceptions.RedisError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"redis at {url} did not become {'up' if up else 'down'}")


class OwnRedis:
    """A redis-server on a free loopback port that a test can stop and start."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_redis(self.url, up=True)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        wait_for_redis(self.url, up=False)


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
