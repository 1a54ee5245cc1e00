"""Upgrade alarms for model_registry/bentoml_compat.py: the BentoML internals the registry
uses. Each failure names what BentoML changed."""

from __future__ import annotations

from pathlib import Path

import bentoml
import yaml

from model_registry.bentoml_compat import (
    create_model,
    new_model_store,
    read_model,
    relabelled_model_yaml,
)

UPGRADE = f"BentoML {bentoml.__version__} changed "


def test_a_store_at_our_path_creates_reads_and_relabels(tmp_path: Path) -> None:
    store = new_model_store(tmp_path)
    with create_model(
        store,
        "compat_check",
        labels={"stage": "candidate"},
        metadata={"threshold": 0.25},
        module="bentoml.sklearn",
        api_version="v1",
        signatures={"predict_proba": {"batchable": True, "batch_dim": 0}},
        context=bentoml.models.ModelContext(framework_name="sklearn", framework_versions={}),
    ) as model:
        (Path(model.path) / "artifact.txt").write_text("x")
        tag = str(model.tag)
    assert (tmp_path / "compat_check").is_dir(), UPGRADE + "where ModelStore(path) saves models"

    stored = new_model_store(tmp_path).get(tag)
    assert stored.info.labels == {"stage": "candidate"}, UPGRADE + "how labels are stored"

    target, text = relabelled_model_yaml(stored, {"stage": "champion"}, {"gate": "passed"})
    assert target == Path(stored.path) / "model.yaml", UPGRADE + "MODEL_YAML_FILENAME"
    assert target.exists(), UPGRADE + "the file a model's info lives in"
    document = yaml.safe_load(text)
    assert document["labels"] == {"stage": "champion"}, UPGRADE + "ModelInfo.dump's layout"
    assert document["metadata"] == {"threshold": 0.25, "gate": "passed"}
    target.write_text(text)

    # A fresh store reads the rewritten file as BentoML's own.
    again = new_model_store(tmp_path).get(tag)
    assert again.info.labels == {"stage": "champion"}, UPGRADE + "model.yaml parsing"
    assert again.info.metadata["gate"] == "passed"
    assert again.info.creation_time == stored.info.creation_time

    # One folder read on its own, as the registry scan reads each entry.
    alone = read_model(Path(stored.path))
    assert str(alone.tag) == tag, UPGRADE + "Model.from_path"
    assert alone.info.labels == {"stage": "champion"}
