"""Promotion gate, rollback, audit log and refusals, each on a private registry."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from tests.model.conftest import WEAK_GRID, register


def snapshot(settings) -> dict[str, str]:
    """Every file of the registry (labels live in model.yaml): proof that nothing changed."""
    home: Path = settings.bentoml_home
    if not home.exists():
        return {}
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file() and p.name != ".registry.lock"
    }


def stages(settings) -> dict[str, str]:
    from training.registry import list_models

    return {r.tag: r.stage for r in list_models(settings)}


def test_the_gate_accepts_a_better_model_and_refuses_a_worse_one(registry, good, weak) -> None:
    from training.promotion import GateConfig, promote
    from training.registry import champion

    weak_tag = register(registry, weak, WEAK_GRID)
    good_tag = register(registry, good)
    gate = GateConfig.from_env(min_gain=0.0, max_slice_drop=0.02, min_slice_rows=300)

    first = promote(registry, weak_tag, gate)
    assert first.action == "promote" and first.gate.passed and first.gate.champion is None

    better = promote(registry, good_tag, gate)
    assert better.action == "promote" and better.gate.passed
    assert better.gate.gain > 0 and not better.gate.champion_rescored
    assert champion(registry).tag == good_tag

    worse_tag = register(registry, weak, WEAK_GRID)
    worse = promote(registry, worse_tag, gate)
    assert worse.action == "promote_refused" and not worse.gate.passed
    assert "does not beat" in " ".join(worse.gate.reasons)
    assert champion(registry).tag == good_tag
    assert stages(registry)[worse_tag] == "candidate"
    assert stages(registry)[weak_tag] == "archived"


def test_a_margin_the_candidate_cannot_clear_refuses_it(registry, good, weak) -> None:
    from training.promotion import GateConfig, promote

    promote(registry, register(registry, weak, WEAK_GRID))
    outcome = promote(registry, register(registry, good), GateConfig.from_env(min_gain=0.5))
    assert outcome.action == "promote_refused"


def test_force_overrides_the_gate_and_logs_the_reason(registry, good, weak) -> None:
    from training.promotion import promote, read_audit
    from training.registry import champion

    promote(registry, register(registry, good))
    weak_tag = register(registry, weak, WEAK_GRID)
    with pytest.raises(ValueError, match="--reason"):
        promote(registry, weak_tag, force=True)
    outcome = promote(registry, weak_tag, force=True, reason="incident 42: roll forward")
    assert outcome.action == "promote_forced" and not outcome.gate.passed
    assert champion(registry).tag == weak_tag
    last = read_audit(registry)[-1]
    assert last["forced"] and last["reason"] == "incident 42: roll forward"


def test_rollback_restores_the_previous_champion(registry, good, weak) -> None:
    from training.promotion import promote, read_history, rollback
    from training.registry import RegistryError, champion

    weak_tag = register(registry, weak, WEAK_GRID)
    good_tag = register(registry, good)
    promote(registry, weak_tag)
    promote(registry, good_tag)

    outcome = rollback(registry, reason="bad canary")
    assert (outcome.old_champion, outcome.new_champion) == (good_tag, weak_tag)
    assert champion(registry).tag == weak_tag
    assert stages(registry) == {weak_tag: "champion", good_tag: "archived"}
    assert read_history(registry) == [weak_tag]
    before = snapshot(registry)
    with pytest.raises(RegistryError, match="no earlier champion"):
        rollback(registry)
    assert snapshot(registry) == before


def test_the_audit_log_records_each_change(registry, good, weak) -> None:
    from training.promotion import promote, read_audit, rollback

    weak_tag = register(registry, weak, WEAK_GRID)
    good_tag = register(registry, good)
    promote(registry, weak_tag, reason="first model")
    promote(registry, good_tag)
    promote(registry, register(registry, weak, WEAK_GRID))  # refused, and still recorded
    rollback(registry, reason="drill")

    entries = read_audit(registry)
    assert [e["action"] for e in entries] == ["promote", "promote", "promote_refused", "rollback"]
    assert [(e["old_champion"], e["new_champion"]) for e in entries] == [
        (None, weak_tag),
        (weak_tag, good_tag),
        (good_tag, good_tag),
        (good_tag, weak_tag),
    ]
    for entry in entries:
        assert entry["user"] and entry["ts"] and entry["tag"]
    assert entries[0]["reason"] == "first model" and entries[3]["reason"] == "drill"
    assert entries[1]["gate"]["passed"] and not entries[2]["gate"]["passed"]


def test_promoting_an_unknown_tag_fails_clearly_and_changes_nothing(registry, good) -> None:
    from training.promotion import promote
    from training.registry import ModelNotFound, RegistryError

    promote(registry, register(registry, good))
    before = snapshot(registry)
    with pytest.raises(ModelNotFound, match="no model flight_delay:doesnotexist"):
        promote(registry, "flight_delay:doesnotexist")
    with pytest.raises(ModelNotFound, match="holds 'flight_delay' only"):
        promote(registry, "other_model:v1")
    with pytest.raises(RegistryError, match="already the champion"):
        promote(registry, "latest")
    assert snapshot(registry) == before


def test_promoting_a_model_without_lineage_fails_clearly_and_changes_nothing(registry, good):
    from training.promotion import promote
    from training.registry import MissingMetadata, import_bentoml, model_store

    promote(registry, register(registry, good))
    bentoml = import_bentoml(registry)
    with bentoml.models.create(
        "flight_delay",
        labels={"stage": "candidate"},
        metadata={"metrics": {"roc_auc": 0.99}},
        _model_store=model_store(registry),
    ) as bare:
        bare_tag = str(bare.tag)
    before = snapshot(registry)
    with pytest.raises(MissingMetadata, match=r"lacks the metadata .*slices"):
        promote(registry, bare_tag)
    assert snapshot(registry) == before


def test_the_cli_reports_an_unknown_tag_without_a_traceback(registry, good) -> None:
    from training.promotion import promote

    promote(registry, register(registry, good))
    env = dict(os.environ, FEASTLINE_DATA_DIR=str(registry.data_dir))
    before = snapshot(registry)
    result = subprocess.run(
        [sys.executable, "-m", "training", "models", "promote", "flight_delay:doesnotexist"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert result.returncode == 1, result.stderr
    assert "no model flight_delay:doesnotexist" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(registry) == before


def test_a_champion_validated_on_another_window_is_rescored(registry, training_set, good):
    """Like for like: the champion is re-scored on the candidate's validation rows."""
    from tests.model.conftest import GOOD_GRID, config
    from training.promotion import promote
    from training.train import fit_and_evaluate

    promote(registry, register(registry, good))
    earlier_end = date(2013, 1, 31)
    other = fit_and_evaluate(training_set, config(GOOD_GRID, train_end=earlier_end))
    outcome = promote(registry, register(registry, other, GOOD_GRID, train_end=earlier_end))
    assert outcome.gate.champion_rescored
    assert outcome.gate.validation_window == {"start": "2013-02-01", "end": "2013-02-28"}
    assert outcome.gate.champion_roc_auc is not None


def test_cli_messages_after_a_rollback_and_a_forced_promotion(
    registry, good, weak, monkeypatch, capsys
) -> None:
    """A refused archived model is not called a candidate; a forced promotion says why it
    overrides the gate; `models show champion` shows the champion."""
    import json

    from training.__main__ import EXIT_GATE_REFUSED, console, main
    from training.promotion import promote, rollback

    monkeypatch.setenv("FEASTLINE_DATA_DIR", str(registry.data_dir))
    monkeypatch.setattr(console, "width", 200)
    weak_tag = register(registry, weak, WEAK_GRID)
    good_tag = register(registry, good)
    promote(registry, weak_tag)
    promote(registry, good_tag)
    rollback(registry, reason="drill")  # good is archived, weak is champion again
    assert stages(registry)[good_tag] == "archived"

    assert main(["models", "promote", good_tag, "--min-gain", "0.9"]) == EXIT_GATE_REFUSED
    out = capsys.readouterr().out
    assert f"{good_tag} stays archived" in out and "candidate" not in out.split("gate")[-1]

    code = main(["models", "promote", good_tag, "--min-gain", "0.9", "--force", "--reason", "r1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "gate refused" in out
    assert "--force overrides the gate's refusal" in out and "'r1'" in out
    assert f"promote_forced: champion {weak_tag} -> {good_tag}" in out

    assert main(["models", "show", "champion"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["tag"] == good_tag and shown["labels"]["stage"] == "champion"
