"""The naive reference service for bench/serving.py: the straightforward BentoML + Feast pattern.

    bentoml serve naive_service:NaiveFlightDelay --working-dir bench   (bench/serving.py starts it)

Default ``@bentoml.service`` settings, ``get_online_features(...).to_df()`` on a
feature service with pandas-mode on-demand views (bench/naive_features.py), and
the registered scikit-learn Pipeline's ``predict_proba`` on that DataFrame.
Nothing here is tuned; that is its purpose. Three things are nonetheless done
as in our service, so that they do not flatter the comparison: Feast's
per-request deprecation warnings are silenced; requests are validated by the
same pydantic model (without the known-airport check, which only costs time);
and bench/serving.py starts it with ``OMP_NUM_THREADS=1`` (unless
``--naive-default-openmp``), because OpenMP's fork-join per tree otherwise
costs it tens to hundreds of milliseconds a request on a busy 2-core machine.

Configured by the environment: ``NAIVE_FEAST_REPO`` (a folder with
feature_store.yaml), ``NAIVE_FEATURE_SERVICE``, ``NAIVE_MODEL_TAG`` and
``BENTOML_HOME`` (the project's model store).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import bentoml
from feast import FeatureStore

from feature_repo.flights.requests import FlightRequest, feature_rows

# Feast re-enables its deprecation warnings at import; without this every request logs them.
warnings.filterwarnings("ignore")


@bentoml.service
class NaiveFlightDelay:
    def __init__(self) -> None:
        self.store = FeatureStore(repo_path=os.environ["NAIVE_FEAST_REPO"])
        self.features = self.store.get_feature_service(os.environ["NAIVE_FEATURE_SERVICE"])
        model = bentoml.models.get(os.environ["NAIVE_MODEL_TAG"])
        self.model = bentoml.sklearn.load_model(model)
        self.inputs = list(model.info.metadata["model_inputs"])
        self.threshold = float(model.info.metadata["threshold"])

    @bentoml.api
    def predict(self, flights: list[FlightRequest]) -> dict[str, Any]:
        frame = self.store.get_online_features(
            features=self.features, entity_rows=feature_rows(flights), full_feature_names=True
        ).to_df()
        probabilities = self.model.predict_proba(frame[self.inputs])[:, 1]
        return {
            "predictions": [
                {
                    "flight_id": flight.flight_id,
                    "late_probability": float(p),
                    "late": bool(p >= self.threshold),
                }
                for flight, p in zip(flights, probabilities, strict=True)
            ]
        }
