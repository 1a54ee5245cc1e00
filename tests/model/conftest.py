"""Models trained once per session on the shared January-February pipeline.

Train on January 1 to February 7, validate on February 8 to 28, with one
hyperparameter setting so the whole area stays fast. ``weak`` is a deliberately
poor model (three stumps) for the promotion gate to refuse.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from tests.conftest import PIPELINE_THROUGH, TRAIN_START

TRAIN_END = date(2013, 2, 7)
GOOD_GRID = {
    "learning_rate": [0.1],
    "max_leaf_nodes": [15],
    "max_iter": [80],
    "l2_regularization": [1.0],
    "min_samples_leaf": [40],
}
WEAK_GRID = {"learning_rate": [0.1], "max_leaf_nodes": [2], "max_iter": [3]}


def config(grid: dict, train_end: date = TRAIN_END, seed: int = 7):
    from training.train import TrainConfig

    return TrainConfig(
        train_start=TRAIN_START,
        train_end=train_end,
        valid_end=PIPELINE_THROUGH,
        seed=seed,
        param_grid=grid,
        cv_splits=3,
    )


@pytest.fixture(scope="session")
def training_set(pipeline):
    """The session's Jan-Feb set, stored where ``train`` looks for a reusable one."""
    from training.catalog import store_built

    return store_built(pipeline.settings, pipeline.training_set)


@pytest.fixture(scope="session")
def good(training_set):
    from training.train import fit_and_evaluate

    return fit_and_evaluate(training_set, config(GOOD_GRID))


@pytest.fixture(scope="session")
def weak(training_set):
    from training.train import fit_and_evaluate

    return fit_and_evaluate(training_set, config(WEAK_GRID))


@pytest.fixture(scope="session")
def registered(pipeline, training_set):
    """One full ``train`` run into the session registry: dataset reuse, report, registry."""
    from training.train import train_and_register

    return train_and_register(pipeline.settings, config(GOOD_GRID), store=pipeline.store)


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings whose registry (BentoML store, audit log) is empty and private to one test."""
    from feature_repo.settings import Settings

    settings = Settings(data_dir=tmp_path / "data")
    # The registry exports BENTOML_HOME; put the session's value back afterwards.
    monkeypatch.setenv("BENTOML_HOME", str(settings.bentoml_home))
    # These tests are about ranking, rollback and the audit log, with models trained on
    # six weeks (``weak`` is three stumps): their slices are far from the production
    # bias bounds. The bias checks have their own tests, with explicit bounds.
    monkeypatch.setenv("FEASTLINE_GATE_MAX_CALIBRATION_GAP", "1")
    monkeypatch.setenv("FEASTLINE_GATE_MAX_RATE_DISPARITY", "1")
    return settings


def register(settings, trained, grid: dict = GOOD_GRID, train_end: date = TRAIN_END) -> str:
    """Store an already-trained model as a candidate; returns its tag."""
    from training.registry import save_model
    from training.train import lineage

    return save_model(settings, trained.pipeline, lineage(trained, config(grid, train_end))).tag
