"""Scoring flights with online features: the service's work, without HTTP.

Kept free of BentoML so that the benchmark's in-process floor, the offline
batch job and the tests use the very same code path as the service.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from feature_repo.clock import Clock
from feature_repo.online import OnlineFeatureReader
from feature_repo.run_lock import OnlineStoreUnavailable
from feature_repo.settings import Settings
from serving.champion import Champion, champion_tag, load_champion

log = logging.getLogger(__name__)

IMPUTATION = (
    "missing and stale features are passed to the model as missing (NaN); the "
    "gradient-boosted trees send them down the branch learned for missing values"
)


@dataclass
class Scored:
    probabilities: list[float]
    decisions: list[bool]
    missing: list[list[str]]
    stale: list[list[str]]
    unknown_aircraft: list[bool]
    feature_seconds: float
    model_seconds: float
    served_at: datetime
    features: dict[str, list[Any]] = field(repr=False, default_factory=dict)


def _is_store_outage(err: BaseException) -> bool:
    from feature_repo.redis_clients import is_outage

    return is_outage(err)


class Predictor:
    def __init__(
        self, settings: Settings, store: Any | None = None, champion: Champion | None = None
    ) -> None:
        from feature_repo.store import open_store

        self.settings = settings
        self.dataset = importlib.import_module(f"{settings.dataset_module}.requests")
        self.store = store or open_store(settings)
        self.clock = Clock(settings)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._install(champion or load_champion(settings))

    def _install(self, champion: Champion) -> None:
        reader = OnlineFeatureReader(self.store, champion.feature_service)
        unknown = sorted(
            set(champion.model_inputs)
            - set(reader.feature_names)
            - set(self.dataset.ENTITY_COLUMNS)
        )
        if unknown:
            raise ValueError(
                f"model {champion.tag} needs inputs that feature service "
                f"{champion.feature_service} does not provide: {unknown}"
            )
        self._plane_features = [
            n for n in reader.feature_names if n.startswith("plane_attributes__")
        ]
        # One assignment swaps both, so a request never sees a new model with an old reader.
        self._active = (champion, reader)

    @property
    def champion(self) -> Champion:
        return self._active[0]

    def reload(self) -> tuple[str, str]:
        """Load the current champion if it changed; returns (old tag, new tag)."""
        with self._lock:
            old = self.champion.tag
            new = champion_tag(self.settings)
            if new != old:
                self._install(load_champion(self.settings, new))
                log.info("champion reloaded", extra={"old": old, "new": new})
            return old, new

    def watch_registry(self, every_seconds: float) -> threading.Thread:
        """Poll the registry off the request path, so every worker follows promotions."""

        def poll() -> None:
            while not self._stop.wait(every_seconds):
                try:
                    self.reload()
                except Exception as err:  # a broken registry must not kill serving
                    log.warning("champion check failed", extra={"error": str(err)})

        thread = threading.Thread(target=poll, name="champion-watch", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._stop.set()

    def score(self, flights: Sequence[Any]) -> Scored:
        champion, reader = self._active
        rows = self.dataset.feature_rows(flights)
        began = time.perf_counter()
        served_at = self.clock.now().instant
        try:
            online = reader.read(rows, served_at.timestamp())
        except Exception as err:
            if _is_store_outage(err):
                raise OnlineStoreUnavailable(f"cannot reach the online store: {err}") from None
            raise
        fetched = time.perf_counter()
        columns = {**{k: rows[k] for k in self.dataset.ENTITY_COLUMNS}, **online.values}
        matrix = champion.scorer.matrix(columns, online.rows)
        probabilities = champion.scorer.predict(matrix).tolist()
        done = time.perf_counter()
        inputs = champion.model_inputs
        missing = [[n for n in inputs if columns[n][i] is None] for i in range(online.rows)]
        return Scored(
            probabilities=probabilities,
            decisions=[p >= champion.threshold for p in probabilities],
            missing=missing,
            stale=[online.stale_in(i) for i in range(online.rows)],
            unknown_aircraft=[
                all(online.values[n][i] is None for n in self._plane_features)
                for i in range(online.rows)
            ],
            served_at=served_at,
            feature_seconds=fetched - began,
            model_seconds=done - fetched,
            features=columns,
        )

    def online_store_answers(self) -> bool:
        """Readiness: can the online store be reached right now?"""
        if self.settings.redis_url:
            import redis

            from feature_repo.redis_clients import open_redis

            try:
                client = open_redis(self.settings, connect_timeout=1, socket_timeout=1)
                try:
                    return bool(client.ping())
                finally:
                    client.close()
            except redis.exceptions.RedisError:
                return False
        return (self.settings.feast_dir / "online_store.db").exists()
