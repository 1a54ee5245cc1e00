"""Rebuild a registered model from its lineage: ``python -m training models reproduce TAG``.

The training set is rebuilt from the raw layer as of the instant recorded in
the model's metadata (``training_set.as_of``), in a scratch folder, never
touching the stored set, and its fingerprint is compared with the recorded one.
The model is then refit with the recorded hyperparameters, seed, CV folds and
thread count (the grid search is not re-run: it only chose these), evaluated on
the same validation split, and its metrics compared with the recorded ones.

It reproduces when the fingerprint matches and ROC-AUC agrees to
``ROC_AUC_TOLERANCE``. Library versions and the installed-packages lock are
compared too and reported; a difference there explains a mismatch, it is not
one by itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from feature_repo.raw_layer import end_of_day
from feature_repo.settings import Settings
from training.dataset import build_training_set
from training.environment import differences, environment
from training.registry import MissingMetadata, get_model
from training.train import TrainConfig, fit_and_evaluate

ROC_AUC_TOLERANCE = 1e-6
# Compared side by side, in this order.
COMPARED_METRICS = (
    "rows",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "threshold",
)


@dataclass
class Reproduction:
    tag: str
    as_of: str
    recorded_fingerprint: str
    fingerprint: str
    rows: int
    metrics: list[tuple[str, Any, Any]]
    environment_changes: list[str]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def fingerprint_matches(self) -> bool:
        return self.fingerprint == self.recorded_fingerprint

    @property
    def roc_auc_delta(self) -> float | None:
        for name, recorded, reproduced in self.metrics:
            if name == "roc_auc" and recorded is not None and reproduced is not None:
                return abs(float(recorded) - float(reproduced))
        return None

    @property
    def reproduced(self) -> bool:
        delta = self.roc_auc_delta
        return self.fingerprint_matches and delta is not None and delta <= ROC_AUC_TOLERANCE


def recorded_as_of(metadata: dict[str, Any]) -> datetime:
    """The instant the model's training set was built as of. Sets built before as-of
    builds recorded only the watermark day, whose end is the same instant."""
    training_set = metadata.get("training_set") or {}
    if training_set.get("as_of"):
        return datetime.fromisoformat(training_set["as_of"])
    if training_set.get("raw_watermark"):
        return end_of_day(date.fromisoformat(training_set["raw_watermark"][:10]))
    raise MissingMetadata("the model records neither training_set.as_of nor raw_watermark")


def recorded_config(metadata: dict[str, Any]) -> TrainConfig:
    """The training run's configuration, with the chosen hyperparameters as a one-point grid."""
    settings = metadata.get("reproducibility") or {}
    params = settings.get("params") or metadata.get("params")
    if not params:
        raise MissingMetadata("the model records no hyperparameters (params)")
    cv_splits = settings.get("cv_splits") or (metadata.get("cv") or {}).get("splits")
    if not cv_splits:
        raise MissingMetadata("the model records no CV folds (reproducibility.cv_splits)")
    valid = metadata["validation_window"]
    return TrainConfig(
        train_start=date.fromisoformat(metadata["train_window"]["start"]),
        train_end=date.fromisoformat(metadata["train_window"]["end"]),
        valid_end=date.fromisoformat(valid["end"]),
        seed=int(settings.get("seed", metadata.get("seed", 42))),
        param_grid={name: [value] for name, value in params.items()},
        cv_splits=int(cv_splits),
        threads=int(settings.get("threads", metadata.get("threads", 1))),
        drop_features=tuple(settings.get("drop_features") or ()),
        recency_half_life_days=settings.get("recency_half_life_days"),
    )


def reproduce(settings: Settings, tag: str, store: Any | None = None) -> Reproduction:
    record = get_model(settings, tag)
    metadata = record.metadata
    as_of = recorded_as_of(metadata)
    window = metadata["training_set"]["window"]
    config = recorded_config(metadata)
    seconds = {}

    started = time.perf_counter()
    rebuilt = build_training_set(
        settings,
        date.fromisoformat(window["start"]),
        date.fromisoformat(window["end"]),
        store=store,
        as_of=as_of,
    )
    seconds["training set"] = time.perf_counter() - started

    started = time.perf_counter()
    trained = fit_and_evaluate(rebuilt, config)
    seconds["fit and evaluate"] = time.perf_counter() - started

    recorded_metrics = metadata.get("metrics", {})
    metrics = [
        (name, recorded_metrics.get(name), trained.evaluation["metrics"].get(name))
        for name in COMPARED_METRICS
    ]
    recorded_env = metadata.get("reproducibility") or {}
    return Reproduction(
        tag=record.tag,
        as_of=as_of.isoformat(),
        recorded_fingerprint=str(metadata["training_set"].get("fingerprint", "")),
        fingerprint=rebuilt.manifest["fingerprint"],
        rows=rebuilt.manifest["rows"],
        metrics=metrics,
        environment_changes=(
            differences(recorded_env, environment())
            if recorded_env.get("libraries")
            else ["the model records no library versions"]
        ),
        seconds=seconds,
    )
