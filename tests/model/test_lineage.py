"""Lineage across a retrain: immutable training sets, as-of rebuilds, `models reproduce`,
the like-for-like gate, and a data dir that still resolves after a move.

One private pipeline (January 1-10 ingested, then two more days) in its own data
dir, so moving the raw watermark cannot disturb the session's shared data.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pytest

WINDOW_START, WINDOW_END = date(2013, 1, 1), date(2013, 1, 10)
FIT_END = date(2013, 1, 7)
LATER = date(2013, 1, 12)
GRID = {
    "learning_rate": [0.1],
    "max_leaf_nodes": [15],
    "max_iter": [40],
    "l2_regularization": [1.0],
    "min_samples_leaf": [40],
}


@dataclass
class Retrained:
    settings: object
    store: object
    first: object  # TrainRun before the later ingest
    second: object  # TrainRun of the same window after it
    first_bytes: str  # sha256 of the first set's file right after it was stored


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_config():
    from training.train import TrainConfig

    return TrainConfig(
        train_start=WINDOW_START,
        train_end=FIT_END,
        valid_end=WINDOW_END,
        seed=11,
        param_grid=GRID,
        cv_splits=2,
    )


@pytest.fixture(scope="module")
def retrained(tmp_path_factory: pytest.TempPathFactory) -> Retrained:
    """Train on Jan 1-10, ingest two more days, train the same window again."""
    from feature_repo.pipeline import ingest
    from feature_repo.settings import Settings
    from feature_repo.store import apply_definitions, open_store
    from training.train import train_and_register

    settings = Settings(data_dir=tmp_path_factory.mktemp("lineage") / "data")
    with pytest.MonkeyPatch.context() as env:
        # The CLI reads the data dir from the environment; BentoML pins its home there.
        env.setenv("FEASTLINE_DATA_DIR", str(settings.data_dir))
        env.setenv("BENTOML_HOME", str(settings.bentoml_home))
        ingest(settings, WINDOW_END)
        store = open_store(settings)
        apply_definitions(store, settings)
        first = train_and_register(settings, train_config(), store=store)
        first_bytes = sha256(first.trained.training_set_path)
        ingest(settings, LATER)
        second = train_and_register(settings, train_config(), store=store)
    return Retrained(settings, store, first, second, first_bytes)


@pytest.fixture
def private_env(retrained, monkeypatch: pytest.MonkeyPatch):
    """The CLI, run in-process, on the private data dir, with room for its tables."""
    from training.__main__ import console

    monkeypatch.setenv("FEASTLINE_DATA_DIR", str(retrained.settings.data_dir))
    monkeypatch.setenv("BENTOML_HOME", str(retrained.settings.bentoml_home))
    monkeypatch.setattr(console, "width", 240)
    return retrained.settings


def test_a_retrain_after_more_data_stores_a_new_set_and_leaves_the_first_as_it_was(
    retrained, private_env
) -> None:
    from training.catalog import stored_sets, verified

    first, second = retrained.first, retrained.second
    first_path = first.trained.training_set_path
    second_path = second.trained.training_set_path
    first_fp = first.trained.manifest["fingerprint"]
    assert not second.dataset_reused  # the watermark moved: a new build
    assert second_path != first_path
    # Flights of the window's last day that landed after its end are now labelled.
    assert second.trained.manifest["rows"] > first.trained.manifest["rows"]
    assert second.trained.manifest["fingerprint"] != first_fp
    assert sha256(first_path) == retrained.first_bytes
    assert verified(first_path).manifest["fingerprint"] == first_fp
    # Each model references its own set, by a path relative to the data dir.
    for run, path in ((first, first_path), (second, second_path)):
        recorded = run.record.metadata["training_set"]["path"]
        assert not Path(recorded).is_absolute()
        assert retrained.settings.data_dir / recorded == path
    listed = {s.path: s for s in stored_sets(retrained.settings)}
    assert listed[first_path].models == (first.record.tag,)
    assert listed[second_path].models == (second.record.tag,)


def test_an_as_of_build_gives_the_first_set_again(retrained, private_env) -> None:
    from datetime import datetime

    from training.dataset import build_training_set

    manifest = retrained.first.trained.manifest
    again = build_training_set(
        retrained.settings,
        WINDOW_START,
        WINDOW_END,
        store=retrained.store,
        as_of=datetime.fromisoformat(manifest["as_of"]),
    )
    assert again.manifest["fingerprint"] == manifest["fingerprint"]
    assert again.manifest["rows"] == manifest["rows"]
    # The label of every row was knowable by then.
    assert again.frame["sched_dep_ts"].max() < datetime.fromisoformat(manifest["as_of"])


def test_models_reproduce_rebuilds_and_refits_the_first_model(
    retrained, private_env, capsys
) -> None:
    from training.__main__ import main

    code = main(["models", "reproduce", retrained.first.record.tag])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "reproduced" in out and "same" in out
    assert f"{retrained.first.trained.evaluation['metrics']['roc_auc']:.6f}" in out


def test_the_gate_compares_on_identical_rows_and_the_audit_log_says_which(
    retrained, private_env
) -> None:
    from training.dataset import fingerprint
    from training.evaluate import classification_metrics
    from training.promotion import GateConfig, promote, read_audit
    from training.registry import load_pipeline

    settings = retrained.settings
    loose = GateConfig(max_calibration_gap=1.0, max_rate_disparity=1.0)
    promote(settings, retrained.first.record.tag, loose)
    outcome = promote(settings, retrained.second.record.tag, loose, force=True, reason="drill")
    gate = outcome.gate
    valid = retrained.second.trained.split.valid
    expected_rows = {"rows": len(valid), "fingerprint": fingerprint(valid)}
    assert gate.champion_rescored
    assert gate.rows_compared == expected_rows
    assert "re-scored on the candidate's" in gate.reasons[0]
    # The champion's score is its own pipeline on the candidate's rows, not its record.
    champion = load_pipeline(settings, retrained.first.record.tag)
    inputs = retrained.first.record.metadata["model_inputs"]
    p = champion.predict_proba(valid[inputs])[:, 1]
    y = valid["label"].to_numpy()
    threshold = retrained.first.record.metadata["threshold"]
    assert gate.champion_roc_auc == pytest.approx(
        classification_metrics(y, p, threshold)["roc_auc"], abs=1e-12
    )
    assert gate.champion_roc_auc != retrained.first.record.metadata["metrics"]["roc_auc"]
    entry = read_audit(settings)[-1]
    assert entry["rows_compared"] == expected_rows
    assert entry["gate"]["champion_rescored"]


def test_datasets_prune_removes_only_unreferenced_sets(retrained, private_env, capsys) -> None:
    from datetime import datetime, timedelta

    from training.__main__ import main
    from training.catalog import build_and_store, stored_sets

    settings = retrained.settings
    as_of = datetime.fromisoformat(retrained.first.trained.manifest["as_of"]) + timedelta(hours=6)
    orphan, _ = build_and_store(settings, WINDOW_START, WINDOW_END, retrained.store, as_of)
    before = {s.path for s in stored_sets(settings)}
    assert orphan.path in before and len(before) == 3

    assert main(["datasets", "list"]) == 0
    listing = capsys.readouterr().out
    assert orphan.manifest["fingerprint"][:12] in listing and "(none)" in listing
    assert retrained.first.record.version in listing
    assert main(["datasets", "prune", "--older-than", "0"]) == 0
    out = capsys.readouterr().out
    assert f"removed {orphan.path.name}" in out
    after = {s.path for s in stored_sets(settings)}
    assert after == before - {orphan.path}
    assert not orphan.path.exists()
    assert retrained.first.trained.training_set_path.exists()
    assert main(["datasets", "prune", "--older-than", "0"]) == 0
    assert "nothing to prune" in capsys.readouterr().out


def test_a_moved_data_dir_still_resolves_every_models_files(
    retrained, tmp_path, monkeypatch
) -> None:
    """Copy the data dir, take the original away: every path in the registry resolves."""
    from feature_repo.settings import Settings
    from monitoring.registry import model_info
    from training.catalog import verified
    from training.registry import list_models, metadata_path

    original = retrained.settings.data_dir
    copy = Settings(data_dir=tmp_path / "elsewhere" / "data")
    shutil.copytree(original, copy.data_dir, symlinks=True)
    hidden = original.with_name(original.name + ".away")
    original.rename(hidden)
    try:
        monkeypatch.setenv("BENTOML_HOME", str(copy.bentoml_home))
        records = list_models(copy)
        assert len(records) == 2
        for record in records:
            meta = record.metadata
            training_set = metadata_path(copy, meta["training_set"]["path"])
            assert training_set.is_relative_to(copy.data_dir)
            assert (
                verified(training_set).manifest["fingerprint"]
                == (meta["training_set"]["fingerprint"])
            )
            for key in ("html", "metrics_json"):
                report = metadata_path(copy, meta["report"][key])
                assert report.is_relative_to(copy.data_dir) and report.is_file()
            profile = model_info(copy, record.tag).reference_profile
            assert profile.is_relative_to(copy.data_dir) and profile.is_file()
    finally:
        hidden.rename(original)


def test_the_first_sets_bytes_never_changed(retrained) -> None:
    # Checked again after every other test in this module ran against the same dir.
    path = retrained.first.trained.training_set_path
    assert sha256(path) == retrained.first_bytes
    assert np.isfinite(retrained.first.trained.evaluation["metrics"]["roc_auc"])


def test_a_bad_as_of_is_refused_by_name(retrained, private_env, capsys) -> None:
    from training.__main__ import main

    def error() -> str:  # rich wraps long lines at spaces
        return " ".join(capsys.readouterr().err.split())

    base = ["build-dataset", "--start", "2013-01-01", "--end", "2013-01-10", "--as-of"]
    with pytest.raises(SystemExit) as exit_info:
        main([*base, "2013-01-11T00:00:00"])  # no UTC offset
    assert exit_info.value.code == 2
    assert "needs a UTC offset" in error()
    assert main([*base, "2014-01-01T00:00:00+00:00"]) == 1
    assert "is after the raw watermark 2013-01-13T00:00:00+00:00" in error()
    assert main([*base, "2013-01-10T12:00:00+00:00"]) == 1
    assert "2013-01-10 is not over yet" in error()
