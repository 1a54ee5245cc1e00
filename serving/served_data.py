"""Logging what was served, off the request path: whylogs profiles and the prediction log.

Both go through ``monitoring``'s bounded queues: a full queue drops rows (and
counts them) rather than slow a request, and nothing here can fail one.
Rows are filed under the time they were served on the system clock, so a
replay rolls profiles per simulated interval.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from feature_repo.clock import parse_duration
from feature_repo.settings import Settings

log = logging.getLogger(__name__)

SERVED_AT = "served_at"


class ServedDataLogger:
    def __init__(self, settings: Settings, writer_id: str) -> None:
        from monitoring import layout
        from monitoring.predictions import PredictionLog
        from monitoring.profiler import ProfileLogger
        from monitoring.reference import PREDICTION_COLUMN

        interval = parse_duration(os.environ.get("FEASTLINE_PROFILE_INTERVAL", "1h"))
        self.prediction_column = PREDICTION_COLUMN
        self.profiles = ProfileLogger(
            layout.profiles_dir(settings), interval, time_column=SERVED_AT, writer_id=writer_id
        )
        self.predictions = PredictionLog(
            layout.predictions_dir(settings), interval, writer_id=writer_id
        )

    def log(
        self,
        flights: Sequence[Any],
        columns: dict[str, list[Any]],
        inputs: Sequence[str],
        probabilities: Sequence[float],
        served_at: datetime,
        tag: str,
    ) -> None:
        rows = []
        for i, probability in enumerate(probabilities):
            row = {name: columns[name][i] for name in inputs}
            row[self.prediction_column] = probability
            row[SERVED_AT] = served_at
            rows.append(row)
            flight_id = flights[i].flight_id
            if flight_id:
                self.predictions.record(flight_id, served_at, probability, tag)
        self.profiles.log(rows)

    @property
    def dropped(self) -> int:
        return self.profiles.stats.rows_dropped + self.predictions.stats.rows_dropped

    def close(self) -> None:
        """Flush the open interval: a clean shutdown loses no logged row."""
        self.profiles.close()
        self.predictions.close()
        log.info(
            "served-data logs flushed",
            extra={"profile_rows": self.profiles.stats.rows_processed, "dropped": self.dropped},
        )
