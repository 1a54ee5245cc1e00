"""Offline batch scoring: point-in-time features from the offline store, the champion model.

Each flight is scored as of its prediction time (scheduled departure minus the
prediction lead), with the same feature service and model inputs as the
online service, so a batch score equals what the service would have answered
at that moment. The output carries the model tag and is written atomically.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from pydantic import ValidationError

from feature_repo.atomic_io import write_parquet
from feature_repo.partition_checksums import PartitionVerifier
from feature_repo.settings import Settings
from serving.champion import load_champion


@dataclass(frozen=True)
class BatchResult:
    rows: int
    late_share: float
    tag: str
    seconds: float
    output: Path


class BadBatchInput(ValueError):
    pass


def _validated(frame: pd.DataFrame, settings: Settings) -> list:
    requests = importlib.import_module(f"{settings.dataset_module}.requests")
    model = requests.request_model(*requests.known_codes(settings.raw_dir))
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    flights = []
    for i, record in enumerate(records):
        if isinstance(record.get("sched_dep"), pd.Timestamp):
            record["sched_dep"] = record["sched_dep"].isoformat()
        try:
            flights.append(model.model_validate(record))
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise BadBatchInput(f"row {i}: field {field!r}: {first['msg']}") from None
    return flights


def score_file(
    settings: Settings, input_path: Path, output_path: Path, store: Any | None = None
) -> BatchResult:
    from feature_repo.store import open_store

    began = time.perf_counter()
    try:
        frame = pd.read_parquet(input_path)
    except (OSError, ValueError) as err:
        raise BadBatchInput(f"cannot read {input_path}: {err}") from None
    if frame.empty:
        raise BadBatchInput(f"{input_path} has no rows")
    flights = _validated(frame, settings)
    requests = importlib.import_module(f"{settings.dataset_module}.requests")
    champion = load_champion(settings)
    store = store or open_store(settings)

    entity = pd.DataFrame(requests.feature_rows(flights))
    entity["tailnum"] = entity["tailnum"].replace("", None)
    entity["row"] = range(len(entity))
    entity["event_timestamp"] = pd.to_datetime(entity["sched_dep_epoch"], unit="s", utc=True) - (
        settings.prediction_lead
    )
    service = store.get_feature_service(champion.feature_service)
    # Feast reads the partitions itself: check the ones that can hold a match first.
    PartitionVerifier().verify_service_reads(
        store,
        service,
        entity["event_timestamp"].min().to_pydatetime(),
        entity["event_timestamp"].max().to_pydatetime() + timedelta(microseconds=1),
    )
    features = (
        store.get_historical_features(
            entity_df=entity,
            features=service,
            full_feature_names=True,
            filter_by_created_timestamp=True,
        )
        .to_df()
        .sort_values("row")
        .reset_index(drop=True)
    )
    probabilities = champion.pipeline.predict_proba(features[champion.model_inputs])[:, 1]
    out = pd.DataFrame(
        {
            "flight_id": [f.flight_id for f in flights],
            "predicted_at": features["event_timestamp"],
            "late_probability": probabilities,
            "late": probabilities >= champion.threshold,
            "model_tag": champion.tag,
            "feature_service": champion.feature_service,
        }
    )
    write_parquet(pa.Table.from_pandas(out, preserve_index=False), output_path)
    return BatchResult(
        rows=len(out),
        late_share=float(out["late"].mean()),
        tag=champion.tag,
        seconds=time.perf_counter() - began,
        output=output_path,
    )
