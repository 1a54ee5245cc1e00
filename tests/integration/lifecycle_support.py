"""A data dir for the loop's tests: the session's January-February data and a champion.

The champion is fitted on January 1 to February 14 and validated to February 28,
so at the first check of March 1 it is fifteen days old and the loop retrains.
Each test copies the prepared dir and simulates early March on it.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from feature_repo.settings import Settings
from lifecycle.policy import Policy

START = date(2013, 3, 1)
# The CLI's default tick: half the feature steps of an hourly one, for the same decisions.
STEP = timedelta(hours=2)
CHAMPION_FIT_END = date(2013, 2, 14)
# Small-data settings: a 30-day reference, verdicts on a few hundred flights. The gate's CI
# is the default's, over days, so a verdict needs three days: the shadow lasts three.
TEST_POLICY: dict[str, Any] = {
    "name": "test",
    "triggers": {"max_age_days": 10, "cooldown_days": 1, "on_drift": False},
    "window": {"validation_days": 2, "reference_days": 30},
    "rollout": {"shadow_days": 3, "max_shadow_days": 5},
    "promotion": {"min_labels": 300, "min_slice_rows": 150, "resamples": 200},
    "rollback": {"watch_days": 5, "min_labels": 300},
    "monitoring": {"performance_min_labels": 300},
}


def policy(**sections: dict[str, Any]) -> Policy:
    document = json.loads(json.dumps(TEST_POLICY))
    for name, values in sections.items():
        document[name] = {**document.get(name, {}), **values}
    return Policy(**document)


def prepare_base(source: Settings, target: Path) -> Settings:
    """Copy raw and feature data, apply, materialize, train and promote the champion."""
    from feature_repo.materialize import Materializer
    from feature_repo.store import apply_definitions, open_store
    from training.promotion import GateConfig, promote
    from training.train import TrainConfig, train_and_register

    for folder in ("raw", "features"):
        shutil.copytree(source.data_dir / folder, target / folder, symlinks=True)
    settings = Settings(data_dir=target)
    store = open_store(settings)
    apply_definitions(store, settings)
    Materializer(settings, store=store).run(
        now=datetime(2013, 2, 28, 22, tzinfo=UTC), wait_seconds=30
    )
    config = TrainConfig(
        train_start=date(2013, 1, 1),
        train_end=CHAMPION_FIT_END,
        valid_end=date(2013, 2, 28),
        seed=3,
        param_grid={
            "learning_rate": [0.1],
            "max_leaf_nodes": [15],
            "max_iter": [60],
            "l2_regularization": [1.0],
            "min_samples_leaf": [40],
        },
        cv_splits=2,
    )
    tag = train_and_register(settings, config, store=store).record.tag
    promote(settings, tag, GateConfig(), force=True, reason="lifecycle test champion")
    return settings


def copy_of(base: Settings, target: Path, **overrides: Any) -> Settings:
    shutil.copytree(base.data_dir, target, symlinks=True)
    return Settings(data_dir=target, **overrides)


def sabotaged_trainer(
    settings: Settings,
    policy: Policy,
    now: datetime,
    metadata: dict[str, Any],
    origin: dict[str, Any],
) -> str:
    """The loop's own retrain, with every model input shuffled across flights before the
    fit: a challenger no better than chance, which must lose to any real model."""
    import numpy as np

    from lifecycle.controller import train_config
    from training.train import train_and_register

    config = train_config(
        policy, now, dict(metadata.get("params") or {}), {**origin, "sabotaged": True}
    )
    inputs = [*metadata["features"], "carrier", "origin"]

    def shuffle(frame: Any) -> Any:
        rng = np.random.default_rng(0)
        for column in inputs:
            if column in frame:
                frame[column] = rng.permutation(frame[column].to_numpy())
        return frame

    return train_and_register(settings, config, prepare=shuffle).record.tag


def audit(settings: Settings) -> list[dict[str, Any]]:
    from training.promotion import read_audit

    return read_audit(settings)


def champions(settings: Settings) -> list[str]:
    from training.registry import champions as crowned

    return [record.tag for record in crowned(settings)]
