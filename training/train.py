"""Train, evaluate and register one model: ``python -m training train``.

The flow: the point-in-time training set for train-start..valid-end (reused
when unchanged), a split by scheduled departure, time-ordered cross-validation
over a small grid, a threshold chosen on the last CV fold, a refit on the
whole training window, evaluation on the validation window, then the report
and the registry entry (a candidate; promotion is a separate, gated step).
"""

from __future__ import annotations

import getpass
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import ParameterGrid, TimeSeriesSplit
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from feature_repo.settings import Settings
from model_registry import MODEL_NAME, relative_to_data
from model_registry.sklearn_compat import batched_permutation_importances, fast_weighted_binning
from training.dataset import TrainingSet, fingerprint, git_commit
from training.environment import environment
from training.evaluate import best_f1_threshold, evaluate, summarise_slices
from training.model import (
    GRIDS,
    ModelInputs,
    build_pipeline,
    model_inputs,
    predict_proba,
    recency_weights,
)
from training.model_card import build_card, slice_table
from training.registry import (
    ModelRecord,
    import_bentoml,
    save_model,
)
from training.trainset import TIME_COLUMN, Split, load_or_build, time_split

log = logging.getLogger(__name__)

# (step, completed, total): lets the CLI draw progress bars without this module knowing rich.
ProgressFn = Callable[[str, int, int], None]


def _no_progress(step: str, completed: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class TrainConfig:
    train_start: date
    train_end: date
    valid_end: date
    seed: int = 42
    grid: str = "default"
    param_grid: dict[str, list[Any]] | None = None  # overrides ``grid`` (tests use tiny grids)
    cv_splits: int = 3
    rebuild_dataset: bool = False
    # OpenMP threads per fit. One by default: on a busy machine, more threads than
    # free cores make the booster's spin-waiting workers many times slower (a
    # 35k-row fit took 15 s on two threads against 3 s on one). Raise it on
    # dedicated hardware.
    threads: int = 1
    # The model card lists every slice; those with fewer validation rows are not checked.
    card_min_slice_rows: int = 300
    # Continuous training (``lifecycle``): features left out of the model (by full name or
    # the name after the view), recency weights that halve every N days of age before the
    # end of the training window, and the instant the training set's labels are as of.
    drop_features: tuple[str, ...] = ()
    recency_half_life_days: float | None = None
    as_of: datetime | None = None
    # Who asked for this model and why (the loop records its run id, trigger and policy):
    # stored as the model's ``origin`` metadata.
    origin: dict[str, Any] | None = None
    # The reference profile (drift) covers the window's last N days (None: all of it). A
    # loop retraining on a long, recency-weighted window compares live traffic with what
    # the model mostly learned from, and profiles a fraction of the rows.
    reference_days: int | None = None

    def __post_init__(self) -> None:
        if not self.train_start <= self.train_end < self.valid_end:
            raise ValueError(
                "expected --train-start <= --train-end < --valid-end, got "
                f"{self.train_start} / {self.train_end} / {self.valid_end}"
            )
        if self.param_grid is None and self.grid not in GRIDS:
            raise ValueError(f"unknown grid {self.grid!r}; choose one of {sorted(GRIDS)}")
        if self.cv_splits < 2:
            raise ValueError(f"--cv-splits must be at least 2, got {self.cv_splits}")
        if self.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {self.threads}")
        if self.reference_days is not None and self.reference_days < 1:
            raise ValueError(f"reference days must be at least 1, got {self.reference_days}")
        if self.recency_half_life_days is not None and self.recency_half_life_days <= 0:
            raise ValueError(
                f"the recency half-life must be positive, got {self.recency_half_life_days}"
            )

    @property
    def candidates(self) -> list[dict[str, Any]]:
        return list(ParameterGrid(self.param_grid or GRIDS[self.grid]))


@dataclass
class TrainedModel:
    """A fitted pipeline and everything measured about it; not yet registered."""

    pipeline: Pipeline
    inputs: ModelInputs
    params: dict[str, Any]
    threshold: float
    cv: dict[str, Any]
    evaluation: dict[str, Any]
    split: Split
    valid_proba: np.ndarray
    manifest: dict[str, Any]
    label: str
    seconds: dict[str, float] = field(default_factory=dict)
    training_set_path: Path | None = None


@dataclass(frozen=True)
class TrainRun:
    trained: TrainedModel
    record: ModelRecord
    report_html: Path
    metrics_json: Path
    dataset_reused: bool


def tune(
    train: pd.DataFrame,
    inputs: ModelInputs,
    label: str,
    config: TrainConfig,
    progress: ProgressFn = _no_progress,
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Pick hyperparameters by mean ROC-AUC over time-ordered folds; then the threshold.

    Each fold trains on the past and scores the block right after it. The
    threshold maximises F1 on the best candidate's last fold, so the
    validation window plays no part in any choice.
    """
    X, y = train[inputs.columns], train[label].to_numpy()
    weights = training_weights(train, config)
    folds = list(TimeSeriesSplit(n_splits=config.cv_splits).split(X))
    candidates = config.candidates
    if len(candidates) == 1:
        # Nothing to choose between (reused or reproduced hyperparameters): only the last
        # fold is fitted, the one the threshold is chosen on.
        folds = folds[-1:]
    total, done = len(candidates) * len(folds), 0
    progress("tuning", done, total)
    results: list[dict[str, Any]] = []
    last_fold: list[Any] = []
    for params in candidates:
        scores = []
        for fit_rows, score_rows in folds:
            pipeline = build_pipeline(inputs, params, config.seed)
            pipeline.fit(X.iloc[fit_rows], y[fit_rows], **_weighted(weights, fit_rows))
            p = predict_proba(pipeline, X.iloc[score_rows], inputs.columns)
            scores.append(float(roc_auc_score(y[score_rows], p)))
            done += 1
            progress("tuning", done, total)
        results.append({"params": params, "roc_auc_mean": float(np.mean(scores)), "folds": scores})
        last_fold.append(p)  # the loop ends on the latest fold
    # A tie goes to the candidate listed first, so the choice never depends on chance.
    best = max(range(len(results)), key=lambda i: (results[i]["roc_auc_mean"], -i))
    threshold_rows = folds[-1][1]
    threshold = best_f1_threshold(y[threshold_rows], last_fold[best])
    cv = {
        "splits": config.cv_splits,
        "folds_fitted": len(folds),
        "scheme": "TimeSeriesSplit (expanding window, never shuffled)",
        "candidates": results,
        "best_params": results[best]["params"],
        "best_roc_auc_mean": results[best]["roc_auc_mean"],
        "threshold_rule": "max F1 on the best candidate's last CV fold",
        "threshold_fold_rows": len(threshold_rows),
    }
    return results[best]["params"], cv, threshold


def training_weights(train: pd.DataFrame, config: TrainConfig) -> np.ndarray | None:
    """Recency weights for ``train`` (None without a half-life): age counted back from the
    end of the training window, so the same rows always get the same weights."""
    if config.recency_half_life_days is None:
        return None
    end = pd.Timestamp(config.train_end + timedelta(days=1), tz="UTC")
    return recency_weights(train[TIME_COLUMN], end, config.recency_half_life_days)


def _weighted(weights: np.ndarray | None, rows: Any = slice(None)) -> dict[str, Any]:
    return {} if weights is None else {"classifier__sample_weight": weights[rows]}


def kept_features(features: list[str], drop: tuple[str, ...]) -> list[str]:
    """``features`` without those named in ``drop``, by full name or by the name after the
    view (``flight_request_features__sched_month`` is dropped by ``sched_month``)."""
    dropped = [f for f in features if f in drop or f.split("__")[-1] in drop]
    if unmatched := set(drop) - {f.split("__")[-1] for f in dropped} - set(dropped):
        raise ValueError(f"no feature named {sorted(unmatched)} to drop; have {features}")
    return [f for f in features if f not in dropped]


def fit_and_evaluate(
    training_set: TrainingSet, config: TrainConfig, progress: ProgressFn = _no_progress
) -> TrainedModel:
    # The same bin edges, found in a tenth of the time with sample weights (sklearn_compat).
    with threadpool_limits(limits=config.threads, user_api="openmp"), fast_weighted_binning():
        return _fit_and_evaluate(training_set, config, progress)


def _fit_and_evaluate(
    training_set: TrainingSet, config: TrainConfig, progress: ProgressFn
) -> TrainedModel:
    manifest = training_set.manifest
    label = manifest["label"]
    split = time_split(training_set.frame, config.train_end)
    features = kept_features(list(manifest["features"]), config.drop_features)
    inputs = model_inputs(split.train, features, label)
    seconds: dict[str, float] = {}

    candidates = config.candidates
    with ThreadPoolExecutor(max_workers=1) as pool:
        # One candidate (reused hyperparameters): the refit needs nothing from the tuning,
        # so it runs in a second thread beside the threshold fold, on the second core
        # (the booster fits without holding the GIL). Each fit is the fit it was, so the
        # model is the same, bit for bit; with more OpenMP threads per fit there is no
        # spare core to take. The thread gets its own copy of the rows.
        early = (
            pool.submit(refit, inputs, candidates[0], split.train.copy(), label, config)
            if len(candidates) == 1 and config.threads == 1
            else None
        )
        started = time.perf_counter()
        params, cv, threshold = tune(split.train, inputs, label, config, progress)
        seconds["tuning"] = time.perf_counter() - started

        started = time.perf_counter()
        progress("refit", 0, 1)
        pipeline = early.result() if early else refit(inputs, params, split.train, label, config)
        progress("refit", 1, 1)
        # With the refit beside the tuning: only the time spent waiting for it after.
        seconds["refit"] = time.perf_counter() - started

    started = time.perf_counter()
    progress("evaluation", 0, 1)
    p = predict_proba(pipeline, split.valid, inputs.columns)
    evaluation = evaluate(split.train, split.valid, label, p, threshold)
    evaluation["card"] = slice_table(
        split.valid, split.valid[label].to_numpy(), p, threshold, config.card_min_slice_rows
    )
    progress("evaluation", 1, 1)
    seconds["evaluation"] = time.perf_counter() - started
    return TrainedModel(
        pipeline=pipeline,
        inputs=inputs,
        params=params,
        threshold=threshold,
        cv=cv,
        evaluation=evaluation,
        split=split,
        valid_proba=p,
        manifest=manifest,
        label=label,
        seconds=seconds,
        training_set_path=training_set.path,
    )


def refit(
    inputs: ModelInputs,
    params: dict[str, Any],
    train: pd.DataFrame,
    label: str,
    config: TrainConfig,
) -> Pipeline:
    """The model: ``params`` fitted on the whole training window."""
    # OpenMP's thread limit is per thread: a fit in a thread of its own sets it again.
    with threadpool_limits(limits=config.threads, user_api="openmp"):
        pipeline = build_pipeline(inputs, params, config.seed)
        weights = training_weights(train, config)
        pipeline.fit(train[inputs.columns], train[label].to_numpy(), **_weighted(weights))
    return pipeline


def window(frame: pd.DataFrame) -> dict[str, str]:
    times = frame["sched_dep_ts"]
    return {"first_departure": times.min().isoformat(), "last_departure": times.max().isoformat()}


def training_set_path(settings: Settings | None, path: Path | None) -> str:
    """The set's path as metadata records it: relative to the data dir when inside it
    (without ``settings``, absolute)."""
    if path is None:
        return ""
    return relative_to_data(settings.data_dir, path) if settings else str(path.resolve())


def lineage(
    trained: TrainedModel, config: TrainConfig, settings: Settings | None = None
) -> dict[str, Any]:
    """The registry metadata: where the model came from, how to rebuild it, how good it was."""
    manifest = trained.manifest
    train_window = {
        "start": config.train_start.isoformat(),
        "end": config.train_end.isoformat(),
        "rows": len(trained.split.train),
        **window(trained.split.train),
    }
    validation_window = {
        "start": (config.train_end + timedelta(days=1)).isoformat(),
        "end": config.valid_end.isoformat(),
        "rows": len(trained.split.valid),
        # The gate compares two models on identical rows only; this says which rows.
        "fingerprint": fingerprint(trained.split.valid),
        **window(trained.split.valid),
    }
    return {
        "feature_service": manifest["feature_service"],
        "features": list(manifest["features"]),
        "model_inputs": trained.inputs.columns,
        "categorical_inputs": trained.inputs.categorical,
        "label": trained.label,
        "training_set": {
            key: manifest.get(key)
            for key in (
                "window",
                "fingerprint",
                "rows",
                "positive_rate",
                "as_of",
                "raw_watermark",
                "prediction_lead_minutes",
                "definitions",
                "git_commit",
            )
        }
        | {"path": training_set_path(settings, trained.training_set_path)},
        "train_window": train_window,
        "validation_window": validation_window,
        "git_commit": git_commit(),
        "seed": config.seed,
        "threads": config.threads,
        "params": trained.params,
        # What `models reproduce` needs beyond the data: the same fit, the same libraries.
        "reproducibility": {
            "seed": config.seed,
            "threads": config.threads,
            "cv_splits": config.cv_splits,
            "params": trained.params,
            "drop_features": list(config.drop_features),
            "recency_half_life_days": config.recency_half_life_days,
            "reference_days": config.reference_days,
            **environment(),
        },
        "model_card": build_card(
            trained.evaluation["card"],
            trained.threshold,
            {
                "train": train_window,
                "validation": validation_window,
                "training_set_as_of": manifest.get("as_of", ""),
                "training_set_fingerprint": manifest.get("fingerprint", ""),
            },
        ),
        "cv": trained.cv,
        "threshold": trained.threshold,
        "metrics": trained.evaluation["metrics"],
        "confusion_matrix": trained.evaluation["confusion_matrix"],
        "slices": summarise_slices(trained.evaluation["slices"]),
        "baselines": trained.evaluation["baselines"],
        "reference_profile": "",
    }


def reference_rows(frame: pd.DataFrame, config: TrainConfig) -> pd.DataFrame:
    """The rows the reference profile describes: the whole set, or its last ``reference_days``
    (training and validation days alike)."""
    if config.reference_days is None:
        return frame
    since = pd.Timestamp(config.valid_end + timedelta(days=1), tz="UTC") - pd.Timedelta(
        days=config.reference_days
    )
    return frame[frame[TIME_COLUMN] >= since]


def write_reference(
    settings: Settings,
    tag: str,
    trained: TrainedModel,
    frame: pd.DataFrame,
    importance: dict[str, float] | None = None,
) -> Path:
    """Profile what the model saw (inputs, its probability, the label) for drift checks.

    The profile covers the whole training set window, training and validation
    days, and is recorded in the model's metadata as ``reference_profile``.
    ``importance``: the model's :func:`permutation_importances`, when already computed.
    """
    from monitoring.calibration import calibrate_reference
    from monitoring.layout import reference_path
    from monitoring.reference import PREDICTION_COLUMN, write_reference_profile

    columns = trained.inputs.columns
    scored = frame[[*columns, trained.label, "event_timestamp"]].copy()
    scored[PREDICTION_COLUMN] = late_probabilities(trained.pipeline, frame, columns)
    path = write_reference_profile(
        scored,
        columns,
        trained.label,
        PREDICTION_COLUMN,
        reference_path(settings, tag),
        model_tag=tag,
        importance=permutation_importances(trained) if importance is None else importance,
    )
    # Drift is judged against what windows of this very history score (its null).
    calibrate_reference(scored, path)
    return path


def late_probabilities(pipeline: Pipeline, frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """:func:`training.model.predict_proba`, the two halves of a large frame on two
    threads (the other core is idle after the fit; the tree walks release the GIL).

    A row's probability depends on that row alone (its encoding, then the same ordered
    sum of tree outputs), so the halves give the very array the whole frame gives.
    """
    if len(frame) < _TWO_THREADS_ROWS:
        return _single_threaded_probabilities(pipeline, frame, columns)
    half = len(frame) // 2
    with ThreadPoolExecutor(max_workers=1) as pool:
        second = pool.submit(_single_threaded_probabilities, pipeline, frame.iloc[half:], columns)
        first = _single_threaded_probabilities(pipeline, frame.iloc[:half], columns)
        return np.concatenate([first, second.result()])


# Below this many rows one thread scores faster than two share the work.
_TWO_THREADS_ROWS = 20_000


def _single_threaded_probabilities(
    pipeline: Pipeline, frame: pd.DataFrame, columns: list[str]
) -> np.ndarray:
    # One OpenMP thread per Python thread (the limit is per thread): two OpenMP workers
    # per call spin-wait on a busy machine (see TrainConfig.threads).
    with threadpool_limits(limits=1, user_api="openmp"):
        return np.asarray(predict_proba(pipeline, frame, columns))


def permutation_importances(trained: TrainedModel, rows: int = 2000) -> dict[str, float]:
    """Drop in validation ROC-AUC when each input is shuffled (a sample, for speed):
    monitoring weighs feature drift by it, so a feature the model ignores pages no one.

    scikit-learn's ``permutation_importance`` of the pipeline (ROC-AUC, two repeats,
    seed 0), computed as ``sklearn_compat.batched_permutation_importances`` does: on the
    booster and the sample encoded once, every shuffled copy scored in one call. The
    encoder maps each value on its own, so shuffling an input column and then encoding
    gives the matrix that encoding and then shuffling the column gives; each column is
    shuffled alike whatever its position. The same numbers, bit for bit, in a fraction
    of the time (tests/model/test_training.py compares the two).
    """
    valid = trained.split.valid
    sample = valid.sample(n=min(rows, len(valid)), random_state=0) if len(valid) else valid
    if sample.empty or sample[trained.label].nunique() < 2:
        return {}
    prepare, classifier = trained.pipeline[:-1], trained.pipeline[-1]
    matrix = prepare.transform(sample[trained.inputs.columns])
    # One OpenMP thread: on a busy machine the booster's spinning workers made the
    # 60 predictions take 50 s instead of 3 s (see TrainConfig.threads).
    with threadpool_limits(limits=1, user_api="openmp"):
        importances = batched_permutation_importances(
            classifier, matrix, sample[trained.label].to_numpy(), n_repeats=2, random_state=0
        )
    names = prepare.get_feature_names_out()
    means = dict(zip(names, np.mean(importances, axis=1), strict=True))
    return {c: round(float(means[c]), 6) for c in trained.inputs.columns}


def train_and_register(
    settings: Settings,
    config: TrainConfig,
    progress: ProgressFn = _no_progress,
    store: Any | None = None,
    prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> TrainRun:
    """Build or reuse the training set, fit, evaluate, report and register a candidate.

    ``prepare`` rewrites the set's rows before the fit (the stored set is unchanged): the
    loop's safety tests train a sabotaged challenger through it.
    """
    started = time.perf_counter()
    progress("training set", 0, 1)
    training_set, reused = load_or_build(
        settings,
        config.train_start,
        config.valid_end,
        rebuild=config.rebuild_dataset,
        store=store,
        as_of=config.as_of,
    )
    progress("training set", 1, 1)
    if prepare is not None:
        training_set = TrainingSet(
            manifest=training_set.manifest,
            path=training_set.path,
            loaded=prepare(training_set.frame.copy()),
        )
    trained = fit_and_evaluate(training_set, config, progress)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The importances need the fitted model only: the booster scores them on the
        # second core (its tree walks release the GIL) while this thread draws the
        # report. The same computation, so the same numbers.
        importance = pool.submit(permutation_importances, trained)
        record, html_path, metrics_path = _register(
            settings, config, progress, training_set, trained, importance
        )
    log.info(
        "model trained",
        extra={
            "tag": record.tag,
            "roc_auc": trained.evaluation["metrics"].get("roc_auc"),
            "threshold": trained.threshold,
            "dataset_reused": reused,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    return TrainRun(trained, record, html_path, metrics_path, reused)


def _register(
    settings: Settings,
    config: TrainConfig,
    progress: ProgressFn,
    training_set: TrainingSet,
    trained: TrainedModel,
    importance: Future[dict[str, float]],
) -> tuple[ModelRecord, Path, Path]:
    """Report, reference profile and registry entry of a fitted model."""
    from training.report import write_report

    # The version is fixed before saving so the report can live under it and
    # the registry entry, written last, can point at a report that exists.
    bentoml = import_bentoml(settings)
    tag = bentoml.Tag(MODEL_NAME).make_new_version()
    metadata = lineage(trained, config, settings)
    metadata["trained_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    if config.origin:
        metadata["origin"] = config.origin
    metadata["trained_by"] = getpass.getuser()
    progress("report", 0, 1)
    out_dir = settings.reports_dir / MODEL_NAME / str(tag.version)
    html_path, metrics_path = write_report(out_dir, str(tag), trained, metadata)
    metadata["report"] = {
        "html": relative_to_data(settings.data_dir, html_path),
        "metrics_json": relative_to_data(settings.data_dir, metrics_path),
    }
    progress("report", 1, 1)
    # The reference profile is written before the model is saved, and the entry
    # names it from the start: a run killed in between leaves no model at all,
    # never one that looks complete without its profile.
    progress("reference profile", 0, 1)
    reference = write_reference(
        settings,
        str(tag),
        trained,
        reference_rows(training_set.frame, config),
        importance=importance.result(),
    )
    metadata["reference_profile"] = relative_to_data(settings.data_dir, reference)
    progress("reference profile", 1, 1)
    progress("registry", 0, 1)
    record = save_model(settings, trained.pipeline, metadata, tag=str(tag))
    progress("registry", 1, 1)
    return record, html_path, metrics_path
