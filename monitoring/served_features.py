"""The served-features log: what each request sent to the feature store and got back.

One row per served flight: the entity keys and request-time fields (whatever
the dataset's request mapping produces), the model-input values the online
store returned (after TTL masking, so a stale value is logged as missing), the
probability, the model tag and ``served_at``. The skew check
(``monitoring.skew``) re-fetches the same rows from the offline store as of
``served_at`` and compares value by value.

Written like the prediction log: bounded queue, background thread, atomic
Parquet parts per interval. Without a fixed schema, because the columns are
the model's inputs, which change with the model.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Unpack

import pandas as pd

from monitoring.parquet_log import LogOptions, ParquetLog, log_parts, read_log, time_range

SERVED_AT = "served_at"
FLIGHT_ID = "flight_id"
MODEL_TAG = "model_tag"
PREFIX = "served"


class ServedFeatureLog(ParquetLog):
    def __init__(
        self,
        out_dir: Path,
        interval: timedelta = timedelta(hours=1),
        **options: Unpack[LogOptions],
    ) -> None:
        # Rows are wide (every model input), so flush sooner than the default.
        options.setdefault("max_buffer_rows", 50_000)
        super().__init__(out_dir, interval, time_column=SERVED_AT, prefix=PREFIX, **options)


def read_served_features(
    directory: Path,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Served rows with ``start <= served_at < end``, oldest first."""
    return read_log(directory, PREFIX, SERVED_AT, start, end)


def newest_served_at(directory: Path) -> datetime | None:
    """When the newest logged row was served, from the newest parts' footers."""
    parts = log_parts(directory, PREFIX)
    if not parts:
        return None
    newest_stamp = parts[-1].name[len(PREFIX) + 1 :].split("-", 1)[0]
    # Every writer's parts of the newest interval: one of them holds the newest row.
    spans = [
        time_range(p, SERVED_AT)
        for p in parts
        if p.name[len(PREFIX) + 1 :].startswith(newest_stamp)
    ]
    ends = [span[1] for span in spans if span is not None]
    return max(ends) if ends else None
