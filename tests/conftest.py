"""Shared fixtures: one real pipeline run on a short window, in a temporary data dir.

The session builds January and February 2013 once (raw ingest, DuckDB feature
tables, Feast registry, and on first use a point-in-time training set) and the
tests read it.
Tests that must change data work on their own copies or restore what they touch.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path

import pytest

from tests.redis_server import OwnRedis

PIPELINE_THROUGH = date(2013, 2, 28)
TRAIN_START = date(2013, 1, 1)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`make test` runs two processes) nothing global is shared.

    Each worker gets its own browser profile and caches (Chromium refuses a profile
    another instance holds), and every worker but the first its own redis-server:
    tests own database numbers on "the machine's Redis", and a twin test in the other
    process must not flush them. Runs before the test modules are imported, so
    ``FEASTLINE_TEST_REDIS_PORT`` reaches ``tests.integration.conftest.MAIN_REDIS``.
    """
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker is None:
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"feastline-tests-{worker}-"))
    config.stash[_SCRATCH] = scratch
    os.environ["XDG_CONFIG_HOME"] = str(scratch / "config")
    os.environ["XDG_CACHE_HOME"] = str(scratch / "cache")
    if worker == "gw0":
        return
    server = OwnRedis(scratch)
    server.start()
    config.stash[_REDIS] = server
    os.environ["FEASTLINE_TEST_REDIS_PORT"] = str(server.port)


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(_REDIS, None)
    if server is not None:
        server.stop()
    scratch = config.stash.get(_SCRATCH, None)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


_REDIS = pytest.StashKey[OwnRedis]()
_SCRATCH = pytest.StashKey[Path]()


@dataclass(frozen=True)
class BuiltPipeline:
    settings: object
    store: object

    @cached_property
    def training_set(self) -> object:
        """January and February's training set, built on first use: several modules
        (the fault tests, the online store's) never read it, and it takes 10-20 s."""
        from training.dataset import build_training_set

        return build_training_set(self.settings, TRAIN_START, PIPELINE_THROUGH, store=self.store)


def tree_checksums(*roots: Path) -> dict[str, str]:
    """sha256 of every file below ``roots``: proof that nothing was rewritten."""
    sums: dict[str, str] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                sums[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("data")
    previous = os.environ.get("FEASTLINE_DATA_DIR")
    os.environ["FEASTLINE_DATA_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("FEASTLINE_DATA_DIR", None)
    else:
        os.environ["FEASTLINE_DATA_DIR"] = previous


@pytest.fixture(scope="session")
def settings(data_dir: Path):
    from feature_repo.settings import Settings

    return Settings(data_dir=data_dir)


@pytest.fixture(scope="session")
def pipeline(settings) -> BuiltPipeline:
    from feature_repo.pipeline import ingest
    from feature_repo.store import apply_definitions, open_store

    ingest(settings, PIPELINE_THROUGH)
    store = open_store(settings)
    apply_definitions(store, settings)
    return BuiltPipeline(settings=settings, store=store)
