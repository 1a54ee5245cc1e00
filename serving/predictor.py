"""Scoring flights with online features: the service's work, without HTTP.

Kept free of BentoML so that the benchmark's in-process floor, the offline
batch job and the tests use the very same code path as the service.
"""

from __future__ import annotations

import importlib
import logging
import os
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
from model_registry.rollout import ROLE_CHAMPION, Rollout, RolloutFileError, read_rollout
from serving.champion import Champion, champion_tag, load_champion
from serving.deadline import Deadline
from serving.routing import canary_rows

log = logging.getLogger(__name__)

# The socket timeout is 2 s per command; a whole read gets about as long.
READ_DEADLINE_SECONDS = float(os.environ.get("FEASTLINE_ONLINE_READ_DEADLINE_SECONDS", "2.5"))

IMPUTATION = (
    "missing and stale features are passed to the model as missing (NaN); the "
    "gradient-boosted trees send them down the branch learned for missing values"
)


@dataclass(frozen=True)
class ModelScores:
    """One model's probability for every flight of a request, and the role it had."""

    model: Champion
    role: str
    probabilities: list[float]


@dataclass(frozen=True)
class Active:
    """What a request is scored with; swapped whole, so a request never sees half a change."""

    champion: Champion
    reader: OnlineFeatureReader
    plane_features: list[str]
    challenger: Champion | None = None
    rollout: Rollout | None = None

    @property
    def describe(self) -> str:
        if self.challenger is None or self.rollout is None:
            return self.champion.tag
        return f"{self.champion.tag} + {self.challenger.tag} ({self.rollout.describe()})"


@dataclass
class Scored:
    """``probabilities``, ``decisions`` and ``missing`` are those of the model that answered
    each flight (``answered_by``); ``scores`` holds every model's, champion first."""

    probabilities: list[float]
    decisions: list[bool]
    missing: list[list[str]]
    stale: list[list[str]]
    unknown_aircraft: list[bool]
    feature_seconds: float
    model_seconds: float
    served_at: datetime
    features: dict[str, list[Any]] = field(repr=False, default_factory=dict)
    scores: list[ModelScores] = field(repr=False, default_factory=list)
    answered_by: list[ModelScores] = field(repr=False, default_factory=list)


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
        # Redis answers over the network: one deadline for the whole read (serving/deadline.py).
        self._deadline = Deadline(READ_DEADLINE_SECONDS) if settings.redis_url else None
        champion = champion or load_champion(settings)
        self._install(champion, *self._challenger_for(champion, {champion.tag: champion}))

    def _install(
        self, champion: Champion, challenger: Champion | None = None, rollout: Rollout | None = None
    ) -> None:
        services = [champion.feature_service]
        if challenger is not None:
            services.append(challenger.feature_service)
        # Features are read once per request: the union of both models' services.
        reader = OnlineFeatureReader(self.store, services)
        for model in (champion, challenger):
            if model is None:
                continue
            unknown = sorted(
                set(model.model_inputs)
                - set(reader.feature_names)
                - set(self.dataset.ENTITY_COLUMNS)
            )
            if unknown:
                raise ValueError(
                    f"model {model.tag} needs inputs that feature service "
                    f"{model.feature_service} does not provide: {unknown}"
                )
        plane = [n for n in reader.feature_names if n.startswith("plane_attributes__")]
        # One assignment swaps everything, so a request never sees a new model with an old reader.
        self._active = Active(champion, reader, plane, challenger, rollout)

    @property
    def champion(self) -> Champion:
        return self._active.champion

    @property
    def active(self) -> Active:
        return self._active

    def _rollout_now(self, champion_tag: str) -> Rollout | None:
        """The rollout in force for this champion at the clock's now, if any."""
        try:
            rollout = read_rollout(self.settings)
        except RolloutFileError as err:
            log.warning("rollout state unreadable; serving the champion alone",
                        extra={"error": str(err)})  # fmt: skip
            return None
        if rollout is None or rollout.challenger == champion_tag:
            return None
        if not rollout.active_at(self.clock.now().instant):
            return None
        return rollout

    def _challenger_for(
        self, champion: Champion, loaded: dict[str, Champion]
    ) -> tuple[Champion | None, Rollout | None]:
        rollout = self._rollout_now(champion.tag)
        if rollout is None:
            return None, None
        try:
            challenger = loaded.get(rollout.challenger) or load_champion(
                self.settings, rollout.challenger
            )
        except Exception as err:  # a challenger that cannot load must not stop the champion
            log.warning("challenger not loaded; serving the champion alone",
                        extra={"tag": rollout.challenger, "error": str(err)})  # fmt: skip
            return None, None
        return challenger, rollout

    def reload(self) -> tuple[str, str]:
        """Load the current champion and rollout if they changed; returns (old tag, new tag)."""
        with self._lock:
            active = self._active
            old = active.champion.tag
            new = champion_tag(self.settings)
            loaded = {active.champion.tag: active.champion}
            if active.challenger is not None:
                loaded[active.challenger.tag] = active.challenger
            champion = loaded.get(new) or load_champion(self.settings, new)
            rollout = self._rollout_now(new)
            wanted = rollout.challenger if rollout else None
            current = active.challenger.tag if active.challenger else None
            if new == old and wanted == current and rollout == active.rollout:
                return old, new
            challenger, rollout = self._challenger_for(champion, loaded)
            self._install(champion, challenger, rollout)
            log.info("models reloaded", extra={"old": old, "new": self._active.describe})
            return old, new

    def watch_registry(self, every_seconds: float) -> threading.Thread:
        """Poll the registry off the request path, so every worker follows promotions
        and rollout changes."""

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
        if self._deadline is not None:
            self._deadline.close()

    def score(self, flights: Sequence[Any]) -> Scored:
        active = self._active
        champion, reader = active.champion, active.reader
        rows = self.dataset.feature_rows(flights)
        began = time.perf_counter()
        served_at = self.clock.now().instant
        try:
            if self._deadline is not None:
                online = self._deadline.run(lambda: reader.read(rows, served_at.timestamp()))
            else:
                online = reader.read(rows, served_at.timestamp())
        except OnlineStoreUnavailable:
            raise
        except Exception as err:
            if _is_store_outage(err):
                raise OnlineStoreUnavailable(f"cannot reach the online store: {err}") from None
            raise
        fetched = time.perf_counter()
        columns = {**{k: rows[k] for k in self.dataset.ENTITY_COLUMNS}, **online.values}
        ours = ModelScores(
            champion, ROLE_CHAMPION, model_probabilities(champion, columns, online.rows)
        )
        scores = [ours]
        answered_by = [ours] * online.rows
        if active.challenger is not None and active.rollout is not None:
            theirs = ModelScores(
                active.challenger,
                active.rollout.role,
                model_probabilities(active.challenger, columns, online.rows),
            )
            scores.append(theirs)
            for i in canary_rows(flights, active.rollout):
                answered_by[i] = theirs
        done = time.perf_counter()
        if len(scores) == 1:
            probabilities = ours.probabilities
            decisions = [p >= champion.threshold for p in probabilities]
        else:
            probabilities = [by.probabilities[i] for i, by in enumerate(answered_by)]
            decisions = [p >= by.model.threshold for p, by in zip(probabilities, answered_by,
                                                                   strict=True)]  # fmt: skip
        missing = [
            [n for n in by.model.model_inputs if columns[n][i] is None]
            for i, by in enumerate(answered_by)
        ]
        return Scored(
            probabilities=probabilities,
            decisions=decisions,
            missing=missing,
            stale=[online.stale_in(i) for i in range(online.rows)],
            unknown_aircraft=[
                all(online.values[n][i] is None for n in active.plane_features)
                for i in range(online.rows)
            ],
            served_at=served_at,
            feature_seconds=fetched - began,
            model_seconds=done - fetched,
            features=columns,
            scores=scores,
            answered_by=answered_by,
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


def model_probabilities(model: Champion, columns: dict[str, list[Any]], rows: int) -> list[float]:
    """``model``'s probability for each of ``rows`` flights, from a request's feature columns
    (``Scored.features``): how the service scores every model it runs."""
    return model.scorer.predict(model.scorer.matrix(columns, rows)).tolist()
