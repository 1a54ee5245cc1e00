"""A compact log of served predictions, for joining with labels that arrive later.

One row per prediction: flight id, prediction time, probability, model tag, and
the model's role: ``champion``, or ``shadow``/``canary`` for a challenger
(``model_registry.rollout``). During a rollout a flight has one row per model;
logs written before roles existed read as the champion's.
Like the profiles it is written off the request path by a background thread,
as Parquet parts (``monitoring.parquet_log``):
``<prefix>-<interval start>[-<writer>]-<part id>.parquet``, each atomically.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Unpack

import pandas as pd
import pyarrow as pa

from monitoring.parquet_log import LogOptions, ParquetLog, read_log

PREDICTION_SCHEMA = pa.schema(
    [
        ("flight_id", pa.string()),
        ("prediction_time", pa.timestamp("us", tz="UTC")),
        ("probability", pa.float64()),
        ("model_tag", pa.string()),
        ("role", pa.string()),
    ]
)
DEFAULT_ROLE = "champion"
COLUMNS = tuple(PREDICTION_SCHEMA.names)


class PredictionLog(ParquetLog):
    """Appends predictions to ``<out_dir>`` off the request path."""

    def __init__(
        self,
        out_dir: Path,
        interval: timedelta = timedelta(hours=1),
        *,
        prefix: str = "predictions",
        **options: Unpack[LogOptions],
    ) -> None:
        super().__init__(
            out_dir,
            interval,
            time_column="prediction_time",
            prefix=prefix,
            schema=PREDICTION_SCHEMA,
            **options,
        )

    def record(
        self,
        flight_id: str,
        prediction_time: datetime,
        probability: float,
        model_tag: str,
        role: str = DEFAULT_ROLE,
    ) -> bool:
        """Queue one prediction; False if it was dropped. Never raises."""
        return self.log(
            {
                "flight_id": flight_id,
                "prediction_time": prediction_time,
                "probability": probability,
                "model_tag": model_tag,
                "role": role,
            }
        )

    def _normalize(self, frame: pd.DataFrame, received: pd.Series) -> pd.DataFrame:
        timed = super()._normalize(frame, received)
        out = pd.DataFrame(index=frame.index)
        out["flight_id"] = frame.get("flight_id", pd.Series(index=frame.index)).astype("string")
        out["prediction_time"] = timed["prediction_time"]
        out["probability"] = pd.to_numeric(
            frame.get("probability", pd.Series(index=frame.index)), errors="coerce"
        ).astype("float64")
        out["model_tag"] = frame.get("model_tag", pd.Series(index=frame.index)).astype("string")
        role = frame.get("role", pd.Series(index=frame.index, dtype="object"))
        out["role"] = role.fillna(DEFAULT_ROLE).astype("string")
        return out


def read_predictions(
    directory: Path,
    start: datetime | None = None,
    end: datetime | None = None,
    prefix: str = "predictions",
) -> pd.DataFrame:
    """Predictions with ``start <= prediction_time < end``, oldest first."""
    frame = read_log(directory, prefix, "prediction_time", start, end, schema=PREDICTION_SCHEMA)
    if "role" not in frame:
        frame["role"] = DEFAULT_ROLE
    frame["role"] = frame["role"].fillna(DEFAULT_ROLE)
    return frame
