"""A compact log of served predictions, for joining with labels that arrive later.

One row per prediction: flight id, prediction time, probability, model tag.
Like the profiles it is written off the request path by a background thread.
Rows are buffered and written as Parquet parts, one per interval per flush,
``<prefix>-<interval start>[-<writer>]-<part id>.parquet``, each atomically: a
crash loses at most the unflushed buffer and never leaves a partial file.
Parts are never rewritten, so memory stays bounded however long the interval.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa

from feature_repo.atomic_io import write_parquet
from monitoring.background import BackgroundSink, Batch
from monitoring.intervals import check_interval, interval_starts, parse_stamp, stamp, utc_now
from monitoring.profiler import batch_frame

PREDICTION_SCHEMA = pa.schema(
    [
        ("flight_id", pa.string()),
        ("prediction_time", pa.timestamp("us", tz="UTC")),
        ("probability", pa.float64()),
        ("model_tag", pa.string()),
    ]
)
COLUMNS = tuple(PREDICTION_SCHEMA.names)


class PredictionLog(BackgroundSink):
    """Appends predictions to ``<out_dir>`` off the request path."""

    def __init__(
        self,
        out_dir: Path,
        interval: timedelta = timedelta(hours=1),
        *,
        writer_id: str | None = None,
        prefix: str = "predictions",
        clock: Callable[[], datetime] = utc_now,
        max_queue: int = 100_000,
        batch_size: int = 1_000,
        max_wait_seconds: float = 1.0,
        checkpoint_seconds: float = 30.0,
        max_buffer_rows: int = 100_000,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.interval = check_interval(interval)
        self._prefix = prefix
        self._suffix = f"-{writer_id}" if writer_id else ""
        self._max_buffer = max_buffer_rows
        self._buffer: list[pd.DataFrame] = []
        self._buffered = 0
        super().__init__(
            name=f"prediction-log:{self.out_dir.name}",
            clock=clock,
            max_queue=max_queue,
            batch_size=batch_size,
            max_wait_seconds=max_wait_seconds,
            checkpoint_seconds=checkpoint_seconds,
        )

    def record(
        self, flight_id: str, prediction_time: datetime, probability: float, model_tag: str
    ) -> bool:
        """Queue one prediction; False if it was dropped. Never raises."""
        return self.log(
            {
                "flight_id": flight_id,
                "prediction_time": prediction_time,
                "probability": probability,
                "model_tag": model_tag,
            }
        )

    def _absorb(self, batch: Batch) -> None:
        frame, received = batch_frame(batch, None)
        out = pd.DataFrame(index=frame.index)
        out["flight_id"] = frame.get("flight_id", pd.Series(index=frame.index)).astype("string")
        when = frame.get("prediction_time", pd.Series(index=frame.index, dtype="object"))
        out["prediction_time"] = (
            pd.to_datetime(when, utc=True, errors="coerce")
            .astype("datetime64[us, UTC]")
            .fillna(received.astype("datetime64[us, UTC]"))
        )
        out["probability"] = pd.to_numeric(
            frame.get("probability", pd.Series(index=frame.index)), errors="coerce"
        ).astype("float64")
        out["model_tag"] = frame.get("model_tag", pd.Series(index=frame.index)).astype("string")
        self._buffer.append(out)
        self._buffered += len(out)
        self._count_done(rows=len(out))
        if self._buffered >= self._max_buffer:
            self._persist(final=False)

    def _persist(self, final: bool) -> None:
        if not self._buffer:
            return
        frame = pd.concat(self._buffer, ignore_index=True)
        keys = interval_starts(frame["prediction_time"], self.interval)
        pending = dict(iter(frame.groupby(keys.to_numpy(), sort=True)))
        try:
            for key in list(pending):
                start = pd.Timestamp(key).to_pydatetime()
                part = f"{stamp(start)}{self._suffix}-{uuid.uuid4().hex[:12]}"
                table = pa.Table.from_pandas(
                    pending[key], schema=PREDICTION_SCHEMA, preserve_index=False
                )
                write_parquet(table, self.out_dir / f"{self._prefix}-{part}.parquet")
                del pending[key]
                self._count_done(files=1)
        finally:
            # Keep only what was not written, so a retry never duplicates a part.
            self._buffer = list(pending.values())
            self._buffered = sum(len(f) for f in self._buffer)


def read_predictions(
    directory: Path,
    start: datetime | None = None,
    end: datetime | None = None,
    prefix: str = "predictions",
) -> pd.DataFrame:
    """Predictions with ``start <= prediction_time < end``, oldest first."""
    parts = []
    for path in sorted(Path(directory).glob(f"{prefix}-*.parquet")):
        interval = parse_stamp(path.name[len(prefix) + 1 :].split("-", 1)[0])
        if end is not None and interval >= end:
            continue
        parts.append(pd.read_parquet(path))
    if not parts:
        return PREDICTION_SCHEMA.empty_table().to_pandas()
    frame = pd.concat(parts, ignore_index=True)
    if start is not None:
        frame = frame[frame["prediction_time"] >= pd.Timestamp(start)]
    if end is not None:
        frame = frame[frame["prediction_time"] < pd.Timestamp(end)]
    return frame.sort_values("prediction_time", kind="stable").reset_index(drop=True)
