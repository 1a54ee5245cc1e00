"""Logging what was served, off the request path: profiles, predictions, served features.

Three logs, written by ``monitoring``'s writers:

- whylogs profiles of the model inputs and the probability (drift);
- the prediction log: flight id, time, probability, model tag (delayed labels);
- the served-features log: the entity keys and request-time fields a request
  sent to Feast, the model-input values it got back, the probability and the
  time it was served. ``python -m monitoring skew`` re-fetches the same rows
  from the offline store at that time and counts the values that differ.

A request only builds one dict per flight and appends the list to a bounded
queue; a full queue drops rows (and counts them) rather than slow a request,
and nothing here can fail one. By default the writers run in a child process
(``monitoring.offload``): whylogs' Python would otherwise hold this process's
GIL for tens of milliseconds per batch, and requests would wait behind it.
``FEASTLINE_SERVED_DATA_PROCESS=off`` keeps them in-process (threads).

Rows are filed under the time they were served on the system clock, so a
replay rolls the logs per simulated interval (``FEASTLINE_PROFILE_INTERVAL``).

During a rollout the challenger's probabilities are logged too, one row per
flight with its tag and role (``shadow`` or ``canary``). Its rows go to the
prediction log and to profiles of its own
(``monitoring.layout.challenger_profiles_dir``), so the champion's profiles
stay the champion's; the served-features log keeps the champion's rows.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from feature_repo.clock import parse_duration
from feature_repo.settings import Settings
from model_registry.rollout import ROLE_CHAMPION

log = logging.getLogger(__name__)

SERVED_AT = "served_at"
FLIGHT_ID = "flight_id"
MODEL_TAG = "model_tag"
PROCESS_ENV = "FEASTLINE_SERVED_DATA_PROCESS"
# The writer process ignores SIGTERM and SIGINT from its first statement: a
# supervisor stopping the service signals the whole process tree, and the writer
# must outlive the service's shutdown hook, which hands it the last rows. It
# exits when told to close, or when its stdin closes because the service died.
_WRITER_CODE = (
    "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "import sys; from serving.served_data import writer_main; sys.exit(writer_main())"
)
# How long the writer process waits for room in a full queue before it drops rows.
_CHILD_BACKPRESSURE_SECONDS = 30.0


@dataclass(frozen=True)
class ServedRows:
    """One request's rows, and the columns its profile leaves out (not model inputs)."""

    rows: list[dict[str, Any]]
    profile_exclude: tuple[str, ...]
    role: str = ROLE_CHAMPION
    # False: the prediction log only. A replay's counterfactual models score the very
    # rows the champion's profile already holds, and nothing reads a profile of theirs.
    profile: bool = True

    def __len__(self) -> int:
        return len(self.rows)


def _interval() -> timedelta:
    return parse_duration(os.environ.get("FEASTLINE_PROFILE_INTERVAL", "1h"))


def _offload_enabled() -> bool:
    return os.environ.get(PROCESS_ENV, "on").lower() not in ("0", "off", "false", "no")


class ServedDataWriter:
    """Splits served rows into the three logs; runs in the writer process (or in-process)."""

    def __init__(self, settings: Settings, writer_id: str, *, block: bool = False) -> None:
        from monitoring import layout
        from monitoring.predictions import PredictionLog
        from monitoring.profiler import ProfileLogger
        from monitoring.reference import PREDICTION_COLUMN
        from monitoring.served_features import ServedFeatureLog

        interval = _interval()
        self._settings, self._writer_id, self._interval = settings, writer_id, interval
        self._challengers: dict[str, Any] = {}  # tag -> its own ProfileLogger
        self.prediction_column = PREDICTION_COLUMN
        # In the writer process waiting is fine (the service's queue absorbs the
        # wait); in the service's own process a full queue must drop instead.
        self._block = block
        self._exclude: tuple[str, ...] | None = None
        self._dropped = 0
        self.profiles = ProfileLogger(
            layout.profiles_dir(settings), interval, time_column=SERVED_AT, writer_id=writer_id
        )
        self.predictions = PredictionLog(
            layout.predictions_dir(settings), interval, writer_id=writer_id
        )
        self.features = ServedFeatureLog(
            layout.served_features_dir(settings), interval, writer_id=writer_id
        )

    def log(self, part: ServedRows) -> None:
        if part.role != ROLE_CHAMPION:
            self._log_challenger(part)
            return
        if part.profile_exclude != self._exclude:
            # A new champion may take a request field as input: recomputed per request.
            self._exclude = part.profile_exclude
            self.profiles.set_exclude(part.profile_exclude)
        # The same dicts go to both logs: neither mutates them.
        self._put(self.profiles, part.rows)
        self._put(self.features, part.rows)
        self._log_predictions(part)

    def _log_challenger(self, part: ServedRows) -> None:
        """A challenger's rows: its own profiles (unless ``part.profile`` is False) and the
        prediction log, nothing else."""
        if not part.rows:
            return
        if part.profile:
            tag = str(part.rows[0][MODEL_TAG])
            self._put(self._challenger_profiles(tag, part.profile_exclude), part.rows)
        self._log_predictions(part)

    def _challenger_profiles(self, tag: str, exclude: tuple[str, ...]) -> Any:
        """The challenger's own ProfileLogger, opened on its first rows."""
        profiles = self._challengers.get(tag)
        if profiles is None:
            from monitoring import layout
            from monitoring.profiler import ProfileLogger

            profiles = self._challengers[tag] = ProfileLogger(
                layout.challenger_profiles_dir(self._settings, tag),
                self._interval,
                time_column=SERVED_AT,
                writer_id=self._writer_id,
                exclude=exclude,
            )
        return profiles

    def _log_predictions(self, part: ServedRows) -> None:
        """One prediction-log row per flight with an id, under the part's tag and role."""
        predictions = [
            {
                "flight_id": row[FLIGHT_ID],
                "prediction_time": row[SERVED_AT],
                "probability": row[self.prediction_column],
                "model_tag": row[MODEL_TAG],
                "role": part.role,
            }
            for row in part.rows
            if row.get(FLIGHT_ID)
        ]
        if predictions:
            self._put(self.predictions, predictions)

    def _sinks(self) -> list[Any]:
        return [self.profiles, self.predictions, self.features, *self._challengers.values()]

    def _put(self, sink: Any, rows: list[dict[str, Any]]) -> None:
        if sink.log(rows):
            return
        if self._block:
            deadline = time.monotonic() + _CHILD_BACKPRESSURE_SECONDS
            while time.monotonic() < deadline:
                time.sleep(0.01)
                if sink.log(rows):
                    return
        self._dropped += len(rows)

    @property
    def dropped(self) -> int:
        return self._dropped + sum(sink.stats.rows_dropped for sink in self._sinks())

    def flush(self) -> None:
        for sink in self._sinks():
            sink.flush()

    def close(self) -> None:
        for sink in self._sinks():
            sink.close()

    def stats(self) -> dict[str, Any]:
        return {
            "profile_rows": self.profiles.stats.rows_processed,
            "prediction_rows": self.predictions.stats.rows_processed,
            "served_feature_rows": self.features.stats.rows_processed,
            "challenger_profile_rows": sum(
                s.stats.rows_processed for s in self._challengers.values()
            ),
            "files_written": sum(s.stats.files_written for s in self._sinks()),
            "errors": sum(s.stats.errors for s in self._sinks()),
            "dropped": self.dropped,
        }


class ServedDataLogger:
    """The service's side: one dict per served flight, queued; the writing happens elsewhere."""

    def __init__(self, settings: Settings, writer_id: str) -> None:
        self._dataset = importlib.import_module(f"{settings.dataset_module}.requests")
        from monitoring.reference import PREDICTION_COLUMN

        self.prediction_column = PREDICTION_COLUMN
        self._writer: ServedDataWriter | None = None
        self._offload: Any = None
        if _offload_enabled():
            from monitoring.offload import OffloadedSink

            command = [sys.executable, "-c", _WRITER_CODE, str(settings.data_dir), writer_id]
            try:
                self._offload = OffloadedSink(command, name=f"served-data:{writer_id}")
            except OSError:
                # Monitoring must not stop the service from starting: write in-process.
                log.exception("writer process not started; served data is written in-process")
        if self._offload is None:
            self._writer = ServedDataWriter(settings, writer_id)

    def log(
        self,
        flights: Sequence[Any],
        columns: dict[str, list[Any]],
        inputs: Sequence[str],
        probabilities: Sequence[float],
        served_at: datetime,
        tag: str,
        role: str = ROLE_CHAMPION,
        *,
        profile: bool = True,
    ) -> None:
        """Queue one model's rows; ``role`` is champion, or the challenger's (shadow, canary).

        ``profile=False`` logs a non-champion's predictions without a profile of its own."""
        if role == ROLE_CHAMPION and not profile:
            raise ValueError("the champion's rows are always profiled: drift reads them")
        request: dict[str, list[Any]] = {}
        if role == ROLE_CHAMPION:
            try:
                # What the request sent to Feast besides the model inputs: join keys and
                # request-time fields, in the dataset's own names (the skew check needs them).
                request = self._dataset.feature_rows(flights)
            except Exception:
                log.exception("served features not logged")
        profiled = inputs if profile else ()  # only a profile needs the inputs
        wanted = set(profiled)
        extras = [name for name in request if name not in wanted]
        rows = []
        for i, probability in enumerate(probabilities):
            row = {name: columns[name][i] for name in profiled}
            for name in extras:
                row[name] = request[name][i]
            row[self.prediction_column] = probability
            row[SERVED_AT] = served_at
            row[FLIGHT_ID] = flights[i].flight_id
            row[MODEL_TAG] = tag
            rows.append(row)
        part = ServedRows(rows, tuple([*extras, FLIGHT_ID, MODEL_TAG]), role, profile)
        if self._offload is not None:
            self._offload.log(part)
        elif self._writer is not None:
            self._writer.log(part)

    def log_scored(self, flights: Sequence[Any], scored: Any) -> None:
        """A request's rows for every model that scored it (``Predictor.score``'s result),
        each under its tag and role."""
        for model_scores in scored.scores:
            self.log(
                flights,
                scored.features,
                model_scores.model.model_inputs,
                model_scores.probabilities,
                scored.served_at,
                model_scores.model.tag,
                role=model_scores.role,
            )

    def flush(self) -> None:
        """Write everything logged so far, the open interval included (a controller reads
        the logs right after)."""
        if self._offload is not None:
            self._offload.flush()
        elif self._writer is not None:
            self._writer.flush()

    @property
    def dropped(self) -> int:
        if self._offload is not None:
            stats = self._offload.stats
            child = self._offload.child_stats.get("dropped", 0)
            return stats.rows_dropped + stats.rows_failed + int(child)
        assert self._writer is not None
        return self._writer.dropped

    def close(self) -> None:
        """Flush the open interval: a clean shutdown loses no logged row."""
        if self._offload is not None:
            self._offload.close()
            stats = self._offload.child_stats
        else:
            assert self._writer is not None
            self._writer.close()
            stats = self._writer.stats()
        log.info("served-data logs flushed", extra={**stats, "dropped": self.dropped})


def writer_main(argv: Sequence[str] | None = None) -> int:
    """The writer process: ``<data dir> <writer id>``; rows arrive on stdin."""
    from monitoring.offload import run_child
    from serving.serving_logs import configure_service_logging

    data_dir, writer_id = list(argv if argv is not None else sys.argv[1:])[:2]
    settings = Settings.from_env(data_dir=Path(data_dir))
    configure_service_logging(settings.data_dir)
    return run_child(ServedDataWriter(settings, writer_id, block=True))
