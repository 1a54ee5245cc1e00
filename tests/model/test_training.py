"""Training is reproducible, time-ordered, beats trivial baselines; registry entries are whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.model.conftest import GOOD_GRID, TRAIN_END, config


def test_same_seed_data_and_code_give_identical_metrics(training_set, good) -> None:
    from training.train import fit_and_evaluate

    again = fit_and_evaluate(training_set, config(GOOD_GRID))
    assert again.evaluation == good.evaluation
    assert again.threshold == good.threshold
    assert again.cv == good.cv
    assert np.array_equal(again.valid_proba, good.valid_proba)


def test_a_one_point_grid_refits_beside_the_tuning_into_the_same_model(
    training_set, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one candidate the refit runs in a second thread while the threshold fold
    fits; the model is the one a refit on its own gives, bit for bit (recency weights
    too, so the weighted binning is shared by both fits)."""
    import threading
    from dataclasses import replace

    from training import train

    threads = []

    def recorded(*args, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread())
        return refit(*args, **kwargs)

    refit = train.refit
    monkeypatch.setattr(train, "refit", recorded)
    weighted = replace(config(GOOD_GRID), recency_half_life_days=10.0)
    trained = train.fit_and_evaluate(training_set, weighted)
    assert threads and threads[0] is not threading.main_thread()

    alone = refit(trained.inputs, trained.params, trained.split.train, trained.label, weighted)
    valid = trained.split.valid[trained.inputs.columns]
    assert np.array_equal(alone.predict_proba(valid), trained.pipeline.predict_proba(valid))
    assert np.array_equal(trained.valid_proba, alone.predict_proba(valid)[:, 1])


def test_no_validation_flight_precedes_a_training_flight(good) -> None:
    train, valid = good.split.train, good.split.valid
    assert train["sched_dep_ts"].max() < valid["sched_dep_ts"].min()
    cut = pd.Timestamp(TRAIN_END, tz="UTC") + pd.Timedelta(days=1)
    assert train["sched_dep_ts"].max() < cut <= valid["sched_dep_ts"].min()
    assert set(train["flight_id"]).isdisjoint(valid["flight_id"])


def test_an_unsorted_set_is_refused_rather_than_split_by_position(good) -> None:
    from training.trainset import time_split

    shuffled = good.split.train.sample(frac=1.0, random_state=0)
    with pytest.raises(ValueError, match="not sorted"):
        time_split(shuffled, TRAIN_END)


def test_cross_validation_folds_only_look_back(good) -> None:
    from sklearn.model_selection import TimeSeriesSplit

    times = good.split.train["sched_dep_ts"].to_numpy()
    for fit_rows, score_rows in TimeSeriesSplit(n_splits=good.cv["splits"]).split(times):
        assert times[fit_rows].max() <= times[score_rows].min()
    assert "never shuffled" in good.cv["scheme"]


def test_the_model_beats_both_trivial_baselines(good) -> None:
    model = good.evaluation["metrics"]["roc_auc"]
    baselines = good.evaluation["baselines"]
    assert baselines["base_rate"]["roc_auc"] == pytest.approx(0.5)
    assert model > baselines["carrier_history"]["roc_auc"] + 0.05


def test_the_carrier_baseline_uses_training_labels_only(good) -> None:
    from training.evaluate import baselines

    train, valid = good.split.train, good.split.valid.copy()
    before = baselines(train, valid, "label")["carrier_history"]
    valid["label"] = 1 - valid["label"]  # flipping validation labels must flip AUC, nothing else
    after = baselines(train, valid, "label")["carrier_history"]
    assert after["roc_auc"] == pytest.approx(1 - before["roc_auc"])


def test_the_threshold_is_not_chosen_on_validation(good) -> None:
    assert good.cv["threshold_rule"].endswith("last CV fold")
    assert good.cv["threshold_fold_rows"] < len(good.split.train)
    assert 0 < good.threshold < 1


def test_the_registered_model_round_trips(pipeline, registered) -> None:
    from training.evaluate import summarise_slices
    from training.model import predict_proba
    from training.registry import get_model, load_pipeline

    record = get_model(pipeline.settings, registered.record.tag)
    meta = record.metadata
    trained = registered.trained
    assert record.stage == "candidate"
    assert meta["feature_service"] == "flight_delay_v1"
    assert meta["features"] == trained.manifest["features"]
    assert meta["training_set"]["fingerprint"] == trained.manifest["fingerprint"]
    assert meta["training_set"]["definitions"] == trained.manifest["definitions"]
    assert meta["training_set"]["window"] == {
        "start": "2013-01-01",
        "end": "2013-02-28",
        "timezone": "UTC",
    }
    assert meta["validation_window"]["start"] == "2013-02-08"
    assert meta["validation_window"]["end"] == "2013-02-28"
    assert meta["metrics"] == trained.evaluation["metrics"]
    assert meta["slices"] == summarise_slices(trained.evaluation["slices"])
    assert meta["slices"]["carrier"]["AA"]["rows"] > 0
    assert meta["threshold"] == trained.threshold
    assert meta["git_commit"]
    # train attaches the whylogs reference profile through the registry's hook
    assert meta["reference_profile"] and not Path(meta["reference_profile"]).is_absolute()
    reference_path = pipeline.settings.data_dir / meta["reference_profile"]
    assert reference_path.is_file()
    # ... with the model's permutation importance, and its drift calibration beside it
    from monitoring.calibration import null_path, read_calibration
    from monitoring.profiles import read_profile

    reference = read_profile(reference_path)
    importance = json.loads(reference.metadata["feature_importance"])
    assert set(importance) == set(meta["model_inputs"]) and max(importance.values()) > 0
    calibration = read_calibration(null_path(reference_path))
    assert calibration.matches(reference) and calibration.windows[7] > 0

    loaded = load_pipeline(pipeline.settings, record.tag)
    valid = trained.split.valid
    assert np.array_equal(predict_proba(loaded, valid, meta["model_inputs"]), trained.valid_proba)

    metrics = json.loads(registered.metrics_json.read_text())
    assert metrics["metrics"] == meta["metrics"] and metrics["tag"] == record.tag
    assert metrics["slices"] == trained.evaluation["slices"]
    html = registered.report_html.read_text()
    # five headline plots, and the model card's calibration plot per slice family
    assert html.count("data:image/png;base64,") == 5 + 3
    assert registered.report_html.parent.name == record.version


def test_the_reference_profile_hook_updates_metadata_only(pipeline, registered, tmp_path) -> None:
    from training.registry import attach_reference_profile, get_model

    profile = tmp_path / "reference.bin"
    profile.write_bytes(b"profile")
    before = get_model(pipeline.settings, registered.record.tag)
    attach_reference_profile(before.tag, profile, pipeline.settings)
    after = get_model(pipeline.settings, before.tag)
    assert after.metadata["reference_profile"] == str(profile.resolve())
    assert after.labels == before.labels
    assert {k: v for k, v in after.metadata.items() if k != "reference_profile"} == {
        k: v for k, v in before.metadata.items() if k != "reference_profile"
    }


def test_a_stored_training_set_is_reused_while_nothing_behind_it_changed(
    pipeline, training_set
) -> None:
    from training.dataset import fingerprint
    from training.trainset import expected_manifest, find_stored, load_or_build

    found, reused = load_or_build(pipeline.settings, *_window(training_set), store=pipeline.store)
    assert reused and found.path == training_set.path
    assert fingerprint(found.frame) == training_set.manifest["fingerprint"]
    expected = expected_manifest(pipeline.settings, *_window(training_set), pipeline.store)
    assert find_stored(pipeline.settings, expected).path == training_set.path
    later = dict(expected, as_of="2013-03-31T00:00:00+00:00")
    assert find_stored(pipeline.settings, later) is None
    fewer = dict(expected, features=expected["features"][1:])
    assert find_stored(pipeline.settings, fewer) is None


def test_changed_feature_definitions_are_never_served_from_a_stored_set(
    pipeline, training_set, tmp_path
) -> None:
    """A query edited (or a view's TTL changed) with no new raw data: neither the stored set
    nor its leading days may be reused, since their values came from the old definitions."""
    import shutil
    import subprocess
    import sys

    from feature_repo.store import dataset_module
    from training.dataset import definitions_digest
    from training.trainset import expected_manifest, find_base, find_stored

    dataset = dataset_module(pipeline.settings)
    service = dataset.FEATURE_SERVICE_NAME
    digest = definitions_digest(pipeline.store, service, dataset.SQL_DIR)
    assert training_set.manifest["definitions"] == digest
    # The same in a new process (Feast pickles on-demand UDFs differently in each one).
    code = (
        "from feature_repo.settings import Settings; from feature_repo.store import "
        "dataset_module, open_store; from training.dataset import definitions_digest; "
        "s = Settings.from_env(); d = dataset_module(s); "
        "print(definitions_digest(open_store(s), d.FEATURE_SERVICE_NAME, d.SQL_DIR))"
    )
    env = {**os.environ, "FEASTLINE_DATA_DIR": str(pipeline.settings.data_dir)}
    other = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert other.stdout.strip() == digest, other.stderr[-2000:]

    edited = tmp_path / "sql"
    shutil.copytree(dataset.SQL_DIR, edited)
    query = sorted(edited.glob("*.sql"))[0]
    query.write_text(query.read_text() + "\n-- edited\n")
    changed = definitions_digest(pipeline.store, service, edited)
    assert changed != digest
    expected = expected_manifest(pipeline.settings, *_window(training_set), pipeline.store)
    assert find_stored(pipeline.settings, expected) is not None
    assert find_base(pipeline.settings, expected) is not None
    stale = dict(expected, definitions=changed)
    assert find_stored(pipeline.settings, stale) is None
    assert find_base(pipeline.settings, stale) is None


def _window(training_set):
    from datetime import date

    window = training_set.manifest["window"]
    return date.fromisoformat(window["start"]), date.fromisoformat(window["end"])


def test_permutation_importance_on_the_encoded_rows_is_the_pipelines(good) -> None:
    """The importances come from the booster scored on the once-encoded sample: the same
    numbers as scikit-learn's permutation importance of the whole pipeline on the rows."""
    from sklearn.inspection import permutation_importance
    from threadpoolctl import threadpool_limits

    from training.train import permutation_importances

    assert good.inputs.categorical, "the check needs encoded (categorical) inputs"
    ours = permutation_importances(good, rows=600)
    sample = good.split.valid.sample(n=600, random_state=0)
    with threadpool_limits(limits=1, user_api="openmp"):
        theirs = permutation_importance(
            good.pipeline, sample[good.inputs.columns], sample[good.label].to_numpy(),
            scoring="roc_auc", n_repeats=2, random_state=0, n_jobs=1,
        )  # fmt: skip
    expected = zip(good.inputs.columns, theirs.importances_mean, strict=True)
    assert ours == {c: round(float(v), 6) for c, v in expected}
    assert list(ours) == good.inputs.columns
    assert sum(v != 0 for v in ours.values()) >= 3  # a real comparison, not all zeros


def test_late_probabilities_in_two_halves_are_predict_probas(
    good, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training import train

    frame = good.split.valid[good.inputs.columns]
    expected = good.pipeline.predict_proba(frame)[:, 1]
    monkeypatch.setattr(train, "_TWO_THREADS_ROWS", 100)  # the test set is small: split it
    assert len(frame) > 100
    got = train.late_probabilities(good.pipeline, frame, good.inputs.columns)
    assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes()
    odd = frame.iloc[:-1]  # an odd row count: halves of unequal length
    assert (
        train.late_probabilities(good.pipeline, odd, good.inputs.columns).tobytes()
        == expected[:-1].tobytes()
    )
