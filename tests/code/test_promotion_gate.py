"""Unit tests of the promotion gate, its configuration and the evaluation helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.evaluate import baselines, best_f1_threshold, slice_metrics
from training.promotion import GateConfig, compare, require_promotable
from training.registry import MissingMetadata, ModelRecord, without_none

WINDOW = {"start": "2013-05-01", "end": "2013-05-31"}


def evaluation(roc_auc: float, slices: dict[str, tuple[float, int]] | None = None) -> dict:
    by_carrier = {k: {"roc_auc": auc, "rows": rows} for k, (auc, rows) in (slices or {}).items()}
    return {
        "metrics": {"roc_auc": roc_auc},
        "slices": {"carrier": by_carrier},
        "validation_window": WINDOW,
    }


def test_the_first_model_passes() -> None:
    result = compare("c", evaluation(0.6), None, None, GateConfig())
    assert result.passed and "first model" in result.reasons[0]


@pytest.mark.parametrize(
    ("candidate", "champion", "min_gain", "passed"),
    [(0.78, 0.77, 0.0, True), (0.77, 0.77, 0.0, False), (0.775, 0.77, 0.01, False)],
)
def test_the_candidate_must_beat_the_champion_by_the_margin(
    candidate: float, champion: float, min_gain: float, passed: bool
) -> None:
    config = GateConfig(min_gain=min_gain)
    result = compare("c", evaluation(candidate), "k", evaluation(champion), config)
    assert result.passed is passed
    assert result.gain == pytest.approx(candidate - champion)


def test_a_slice_that_drops_too_far_refuses_an_overall_better_model() -> None:
    champion = evaluation(0.77, {"AA": (0.80, 1000), "UA": (0.75, 1000)})
    candidate = evaluation(0.78, {"AA": (0.70, 1000), "UA": (0.78, 1000)})
    result = compare("c", candidate, "k", champion, GateConfig(max_slice_drop=0.02))
    assert not result.passed
    assert [d["slice"] for d in result.slice_drops] == ["carrier=AA"]
    assert "carrier=AA" in result.reasons[-1]


def test_small_slices_are_not_compared() -> None:
    champion = evaluation(0.77, {"HA": (0.90, 50)})
    candidate = evaluation(0.78, {"HA": (0.60, 50)})
    result = compare("c", candidate, "k", champion, GateConfig(min_slice_rows=300))
    assert result.passed and result.slices_compared == 0


def test_gate_settings_come_from_the_environment_then_flags(monkeypatch) -> None:
    monkeypatch.setenv("FEASTLINE_GATE_MIN_GAIN", "0.005")
    monkeypatch.setenv("FEASTLINE_GATE_MIN_SLICE_ROWS", "1000")
    config = GateConfig.from_env(min_slice_rows=50, max_slice_drop=None)
    assert (config.min_gain, config.min_slice_rows, config.max_slice_drop) == (0.005, 50, 0.02)
    monkeypatch.setenv("FEASTLINE_GATE_MIN_GAIN", "a lot")
    with pytest.raises(ValueError, match="FEASTLINE_GATE_MIN_GAIN"):
        GateConfig.from_env()


def test_missing_lineage_is_named(tmp_path: Path) -> None:
    record = ModelRecord(
        tag="flight_delay:x",
        labels={"stage": "candidate"},
        metadata={"metrics": {"roc_auc": 0.9}, "threshold": 0.3},
        creation_time=datetime.now(UTC),
        path=tmp_path,
    )
    with pytest.raises(MissingMetadata, match=r"slices.*model_inputs"):
        require_promotable(record)


def test_metadata_drops_nulls_that_bentoml_refuses() -> None:
    assert without_none({"a": None, "b": {"c": None, "d": 1}, "e": [1, None]}) == {
        "b": {"d": 1},
        "e": [1],
    }


def test_the_threshold_maximises_f1() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.6, 0.4, 0.7, 0.9])
    assert best_f1_threshold(y, p) == pytest.approx(0.4)


def test_the_carrier_baseline_is_the_training_late_share() -> None:
    train = pd.DataFrame({"carrier": ["AA", "AA", "UA", "UA"], "label": [1, 1, 0, 1]})
    valid = pd.DataFrame({"carrier": ["AA", "UA", "ZZ", "UA"], "label": [1, 0, 0, 1]})
    result = baselines(train, valid, "label")
    assert result["base_rate"]["roc_auc"] == 0.5
    # scores AA 1.0, UA 0.5, unseen ZZ the base rate 0.75; of the four (late, on-time)
    # pairs the late flights win two, tie one and lose one
    assert result["carrier_history"]["roc_auc"] == pytest.approx(0.625)


def test_slices_leave_undefined_metrics_out() -> None:
    frame = pd.DataFrame({"carrier": ["AA", "AA", "UA", "UA"], "origin": ["JFK"] * 4})
    y, p = np.array([1, 1, 0, 1]), np.array([0.9, 0.8, 0.2, 0.7])
    slices = slice_metrics(frame, y, p, threshold=0.5)
    assert "roc_auc" not in slices["carrier"]["AA"]  # only late flights: AUC undefined
    assert slices["carrier"]["UA"]["roc_auc"] == 1.0 and slices["origin"]["JFK"]["rows"] == 4


def test_a_training_window_out_of_order_is_refused_by_name() -> None:
    from datetime import date

    from training.train import TrainConfig

    with pytest.raises(ValueError, match="--train-start <= --train-end < --valid-end"):
        TrainConfig(date(2013, 5, 1), date(2013, 4, 30), date(2013, 5, 31))
    with pytest.raises(ValueError, match="unknown grid 'huge'"):
        TrainConfig(date(2013, 1, 1), date(2013, 4, 30), date(2013, 5, 31), grid="huge")


def test_the_cli_refuses_a_forced_promotion_without_a_reason(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "training", "models", "promote", "latest", "--force"],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ, FEASTLINE_DATA_DIR=str(tmp_path)),
    )
    assert result.returncode == 1
    assert "--force needs a --reason" in result.stderr and "Traceback" not in result.stderr
