"""Finding and loading the champion model from the registry (the BentoML model store).

Serving meets training only here, through the registry's contract (see the
README): models named ``flight_delay``, the label ``stage=champion`` marks the
one to serve, and ``metadata`` says which feature service, input columns and
threshold it was trained with.

Scoring avoids the Pipeline's pandas path: one-row DataFrames and the
ColumnTransformer cost far more than the trees. :class:`FastScorer` reads the
fitted encoder's categories and feeds the classifier a NumPy matrix in the
exact column order the Pipeline would, so the probabilities are identical.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from feature_repo.settings import Settings

MODEL_NAME = "flight_delay"
STAGE_LABEL = "stage"
CHAMPION = "champion"
PROMOTED_AT_LABEL = "promoted_at"
REQUIRED_METADATA = ("feature_service", "model_inputs", "categorical_inputs", "threshold")


class NoChampion(RuntimeError):
    """There is no model to serve."""


def _model_store(settings: Settings) -> Any:
    os.environ.setdefault("BENTOML_HOME", str(settings.bentoml_home))
    from bentoml._internal.models.model import ModelStore

    path = settings.bentoml_home / "models"
    path.mkdir(parents=True, exist_ok=True)
    return ModelStore(path)


def champion_tag(settings: Settings) -> str:
    """The tag of the model labelled champion (the latest promotion wins a tie)."""
    store = _model_store(settings)
    try:
        models = store.list(MODEL_NAME)
    except Exception:  # BentoML raises NotFound when no model of that name exists
        models = []
    champions = [m for m in models if m.info.labels.get(STAGE_LABEL) == CHAMPION]
    if not champions:
        raise NoChampion(
            f"no champion model '{MODEL_NAME}' in the registry at {settings.bentoml_home}. "
            "Train and promote one first: `make run`, or "
            "`python -m training train ... && python -m training models promote <tag>`"
        )
    best = max(
        champions, key=lambda m: (m.info.labels.get(PROMOTED_AT_LABEL, ""), m.info.creation_time)
    )
    return str(best.tag)


class FastScorer:
    def __init__(self, pipeline: Any, model_inputs: Sequence[str]) -> None:
        prepare = pipeline.named_steps["prepare"]
        self.classifier = pipeline.named_steps["classifier"]
        self.order = [str(c) for c in prepare.get_feature_names_out()]
        missing = sorted(set(self.order) - set(model_inputs))
        if missing:
            raise ValueError(f"model expects inputs its metadata does not list: {missing}")
        self.codes: dict[str, dict[Any, float]] = {}
        for name, encoder, columns in prepare.transformers_:
            if name == "categorical":
                for column, categories in zip(columns, encoder.categories_, strict=True):
                    self.codes[column] = {
                        value: float(i) for i, value in enumerate(categories) if _present(value)
                    }

    def matrix(self, columns: Mapping[str, Sequence[Any]], rows: int) -> np.ndarray:
        matrix = np.empty((rows, len(self.order)), dtype=np.float64)
        for j, name in enumerate(self.order):
            values = columns[name]
            codes = self.codes.get(name)
            if codes is not None:
                matrix[:, j] = [codes.get(v, math.nan) for v in values]
            else:
                matrix[:, j] = [math.nan if v is None else v for v in values]
        return matrix

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        if not _single_threaded[0]:
            _limit_openmp_to_one_thread()
        with warnings.catch_warnings():
            # Fitted on a DataFrame; the columns are in the fitted order by construction.
            warnings.simplefilter("ignore", UserWarning)
            return self.classifier.predict_proba(matrix)[:, 1]


_single_threaded = [False]


def _limit_openmp_to_one_thread() -> None:
    """Scoring a few rows, OpenMP's fork-join per tree costs ~3 ms per tree set on
    this 2-core machine, 100x the work itself. Serving runs one thread per request
    instead, and gets its parallelism from workers and concurrent requests."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="openmp")
    _single_threaded[0] = True


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class Champion:
    tag: str
    feature_service: str
    model_inputs: list[str]
    categorical_inputs: list[str]
    threshold: float
    pipeline: Any
    scorer: FastScorer


def load_champion(settings: Settings, tag: str | None = None) -> Champion:
    tag = tag or champion_tag(settings)
    store = _model_store(settings)
    model = store.get(tag)
    metadata = model.info.metadata
    absent = [key for key in REQUIRED_METADATA if key not in metadata]
    if absent:
        raise NoChampion(f"model {tag} lacks registry metadata {absent}; re-register it")
    import bentoml

    pipeline = bentoml.sklearn.load_model(model)
    inputs = list(metadata["model_inputs"])
    return Champion(
        tag=tag,
        feature_service=str(metadata["feature_service"]),
        model_inputs=inputs,
        categorical_inputs=list(metadata["categorical_inputs"]),
        threshold=float(metadata["threshold"]),
        pipeline=pipeline,
        scorer=FastScorer(pipeline, inputs),
    )
