"""The one way the pipelines open Feast.

``feature_store.yaml`` stays the single description of the store, readable by
the Feast CLI. This module loads it and overrides only what the environment
decides: where the registry lives, and whether the online store is the
embedded SQLite file or Redis (when ``REDIS_URL`` is set).
"""

from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import yaml

from feature_repo.feast_compat import redis_client
from feature_repo.settings import FEATURE_REPO_DIR, Settings

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

FEATURE_STORE_YAML = FEATURE_REPO_DIR / "feature_store.yaml"


def quiet_feast_warnings() -> None:
    """Feast calls ``warnings.simplefilter("once", ...)`` at import; re-filter afterwards."""
    import feast  # noqa: F401  (the import is what installs Feast's filters)

    for category in (DeprecationWarning, FutureWarning, UserWarning, RuntimeWarning):
        warnings.filterwarnings("ignore", category=category)
    os.environ.setdefault("FEAST_USAGE", "False")


def repo_config_dict(settings: Settings) -> dict[str, Any]:
    raw = yaml.safe_load(os.path.expandvars(FEATURE_STORE_YAML.read_text()))
    raw["registry"]["path"] = str(settings.feast_dir / "registry.db")
    if settings.engine == "spark":
        # Feast's own Spark offline store (point-in-time joins) and Spark compute engine
        # (materialization), on SPARK_MASTER; the views' sources are then SparkSources.
        from feature_repo.spark_session import spark_conf

        conf = spark_conf(settings)
        raw["offline_store"] = {"type": "spark", "spark_conf": conf}
        raw["batch_engine"] = {"type": "spark.engine", "spark_conf": conf}
    if settings.redis_url:
        raw["online_store"] = {
            "type": "redis",
            "redis_type": settings.redis_type,
            # Bounded timeouts: an unreachable Redis must fail a request, not hang it.
            "connection_string": settings.feast_redis_connection_string()
            + ",socket_connect_timeout=2,socket_timeout=2",
            "key_ttl_seconds": settings.redis_key_ttl_seconds,
            # One pipeline per batch instead of reading every key's timestamp first.
            # Only the Materializer writes, under its lock, and an incremental window
            # lies after everything written before it, so the check never skips a row;
            # a backfill below the watermark turns it back on (WindowTask.newest_wins).
            "skip_dedup": True,
        }
    else:
        raw["online_store"] = {
            "type": "sqlite",
            "path": str(settings.feast_dir / "online_store.db"),
        }
    return raw


def repo_config(settings: Settings) -> RepoConfig:
    from feast.repo_config import RepoConfig

    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return RepoConfig(repo_path=FEATURE_REPO_DIR, **repo_config_dict(settings))


def open_store(settings: Settings | None = None) -> FeatureStore:
    os.environ.setdefault("FEAST_USAGE", "False")
    from feast import FeatureStore

    from feature_repo.feast_compat import apply_patches

    quiet_feast_warnings()
    apply_patches()
    settings = settings or Settings.from_env()
    from feature_repo.relocation import check_registry, registry_is_corrupt

    try:
        store = FeatureStore(config=repo_config(settings))
    except Exception:
        registry_is_corrupt(settings)  # raises CorruptRegistry, naming the file, if it is
        raise
    if settings.redis_url:
        _bound_redis_retries(store)
    check_registry(store, settings)  # a corrupt one is named; a moved one read as ours
    return store


def _bound_redis_retries(store: FeatureStore) -> None:
    """Make an unreachable Redis fail within about a second.

    redis-py 7 retries a failed command 3 times with jittered backoff of up to 1, 2
    and 4 s, and a connection attempt inside each retry again: a request to a Redis
    that is down could wait anywhere from one to tens of seconds. Serving answers 503
    and materialization leaves its watermark for the next run, so both want to know
    quickly. On a cluster the same policy bounds the client's retries after a
    connection error or ``CLUSTERDOWN`` (each retry re-reads the slot map first), so
    a read that hits a dead master's slots fails fast too and succeeds again once
    its replica has taken over.
    """
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    client = redis_client(store)
    client.set_retry(Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=2))


def dataset_module(settings: Settings) -> ModuleType:
    return importlib.import_module(settings.dataset_module)


def definitions_module(settings: Settings) -> ModuleType:
    """Import the dataset's Feast definitions with paths for ``settings``.

    The definitions resolve source paths from the environment when imported,
    so the data directory is exported before the first import.
    """
    os.environ["FEASTLINE_DATA_DIR"] = str(settings.data_dir)
    # The engine decides the sources' kind (FileSource or SparkSource); it is exported
    # only while the definitions are (re)imported, so that it never leaks into others.
    engine = os.environ.get("FEASTLINE_ENGINE")
    os.environ["FEASTLINE_ENGINE"] = settings.engine
    try:
        module = importlib.import_module(f"{settings.dataset_module}.definitions")
        expected = str(settings.features_dir)
        first = module.FEATURE_VIEWS[0].batch_source
        spark = type(first).__name__ == "SparkSource"
        if not first.path.startswith(expected) or spark != (settings.engine == "spark"):
            module = importlib.reload(module)
    finally:
        if engine is None:
            os.environ.pop("FEASTLINE_ENGINE", None)
        else:
            os.environ["FEASTLINE_ENGINE"] = engine
    return module


def apply_definitions(store: FeatureStore, settings: Settings) -> list[str]:
    """Register every Feast object of the dataset; returns the names applied."""
    module = definitions_module(settings)
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView

    objects: list[Any] = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, Entity | FeatureView | OnDemandFeatureView | FeatureService)
    ]
    store.apply(objects)
    return sorted(obj.name for obj in objects)


def registry_path(settings: Settings) -> Path:
    return settings.feast_dir / "registry.db"
