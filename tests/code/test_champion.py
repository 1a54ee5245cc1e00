"""serving.champion: fast scoring equals the Pipeline; the registry is re-read on change."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from serving.champion import FastScorer

CATEGORICAL = ["plane_type", "carrier"]
NUMERIC = ["temp", "delay", "hour"]


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            # None is a category the encoder learns; NaN would be its missing marker.
            "plane_type": rng.choice(["fixed wing", "rotorcraft", None], rows).astype(object),
            "carrier": rng.choice(["UA", "AA", "B6", "DL", "WN"], rows).astype(object),
            "temp": rng.normal(60, 15, rows),
            "delay": rng.exponential(20, rows),
            "hour": rng.integers(0, 24, rows).astype(float),
        }
    )
    data.loc[rng.random(rows) < 0.1, "temp"] = np.nan
    data.loc[rng.random(rows) < 0.1, "delay"] = np.nan
    return data


def fitted(numpy_inside: bool) -> tuple[Pipeline, pd.DataFrame]:
    """The older fit (HGB on a DataFrame, categoricals by name) or the newer (NumPy + mask)."""
    data = frame(3000, seed=1)
    label = (data["delay"].fillna(0) + 10 * (data["carrier"] == "UA") > 25).to_numpy()
    prepare = ColumnTransformer(
        [
            (
                "categorical",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan),
                CATEGORICAL,
            )
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    if numpy_inside:
        mask = [name in CATEGORICAL for name in CATEGORICAL + NUMERIC]
        classifier = HistGradientBoostingClassifier(
            categorical_features=mask, max_iter=40, random_state=0
        )
    else:
        prepare.set_output(transform="pandas")
        classifier = HistGradientBoostingClassifier(
            categorical_features=CATEGORICAL, max_iter=40, random_state=0
        )
    pipeline = Pipeline([("prepare", prepare), ("classifier", classifier)])
    pipeline.fit(data[CATEGORICAL + NUMERIC], label)
    return pipeline, data


def columns_of(data: pd.DataFrame) -> dict[str, list[Any]]:
    """What serving hands the scorer: plain lists, None for a missing number."""
    return {
        name: [None if isinstance(v, float) and math.isnan(v) else v for v in data[name]]
        for name in data.columns
    }


@pytest.mark.parametrize("numpy_inside", [False, True], ids=["dataframe-fit", "numpy-fit"])
def test_fast_scorer_equals_the_pipeline(numpy_inside: bool) -> None:
    pipeline, _ = fitted(numpy_inside)
    scorer = FastScorer(pipeline, CATEGORICAL + NUMERIC)
    assert scorer.fast, "the self-check at load should accept the fast path"
    test = frame(200, seed=2)
    test.loc[::17, "carrier"] = "ZZ"  # unseen: counts as missing
    test.loc[::13, "plane_type"] = None
    expected = pipeline.predict_proba(test[CATEGORICAL + NUMERIC])[:, 1]
    columns = columns_of(test)
    # One row and a few take the level-wise walk, many rows scikit-learn's per-tree loop.
    for rows in (1, 3, 63, 64, 200):
        part = {name: values[:rows] for name, values in columns.items()}
        got = scorer.predict(scorer.matrix(part, rows))
        assert np.max(np.abs(got - expected[:rows])) <= 1e-12


def test_a_disagreeing_fast_path_falls_back_to_the_classifier(monkeypatch) -> None:
    import serving.champion as champion

    pipeline, _ = fitted(numpy_inside=False)
    monkeypatch.setattr(champion._Forest, "_walk", lambda self, matrix: self._per_tree(matrix) + 1)
    scorer = FastScorer(pipeline, CATEGORICAL + NUMERIC)
    assert not scorer.fast
    test = frame(5, seed=3)
    expected = pipeline.predict_proba(test[CATEGORICAL + NUMERIC])[:, 1]
    got = scorer.predict(scorer.matrix(columns_of(test), 5))
    assert np.max(np.abs(got - expected)) <= 1e-12


def test_champion_tag_rereads_the_registry_only_when_a_model_file_changes(
    tmp_path, monkeypatch
) -> None:
    from types import SimpleNamespace

    import serving.champion as champion
    from feature_repo.settings import Settings

    settings = Settings(data_dir=tmp_path)
    versions = settings.bentoml_home / "models" / champion.MODEL_NAME
    labels = {"v1": {"stage": "champion", "promoted_at": "1"}, "v2": {"stage": "candidate"}}
    for version in labels:
        (versions / version).mkdir(parents=True)
        (versions / version / "model.yaml").write_text(f"{labels[version]}\n")
    reads = []

    def scan(_settings: Settings) -> SimpleNamespace:
        name = champion.MODEL_NAME
        reads.append(name)
        models = [
            SimpleNamespace(
                tag=f"{name}:{v}", info=SimpleNamespace(labels=labels[v], creation_time=v)
            )
            for v in sorted(labels)
        ]
        return SimpleNamespace(models=models, broken=[])

    monkeypatch.setattr(champion, "scan_models", scan)
    monkeypatch.setattr(champion, "_champion_cache", {})
    assert champion.champion_tag(settings) == "flight_delay:v1"
    assert champion.champion_tag(settings) == "flight_delay:v1"
    assert len(reads) == 1
    # A promotion rewrites model.yaml by renaming a new file over it.
    labels["v2"] = {"stage": "champion", "promoted_at": "2"}
    replacement = versions / "v2" / "model.yaml.tmp"
    replacement.write_text(f"{labels['v2']}\n")
    replacement.replace(versions / "v2" / "model.yaml")
    assert champion.champion_tag(settings) == "flight_delay:v2"
    assert len(reads) == 2
