"""Background profiling of served rows: one whylogs ``.bin`` per time interval.

Each row belongs to the interval of its event time: the ``time_column`` when the
rows carry one (so a replay of simulated days rolls per simulated day), else the
moment ``log()`` received it. An interval's profile is kept in memory, written
atomically every ``checkpoint_seconds`` while open (a crash loses at most that
much) and a last time when it closes: when rows at least ``allowed_lateness``
past its end have been seen, when the clock passes it (rows without a time
column), on ``flush()`` and on ``close()``.

whylogs' own rolling logger is not used: its first window runs up to twice the
interval, and it drops the open profile unless closed explicitly.

Several writers (e.g. BentoML workers) must not share a file: give each a
``writer_id``, and readers merge an interval's files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring.background import BackgroundSink, Batch
from monitoring.intervals import check_interval, interval_start, interval_starts, stamp, utc_now
from monitoring.profiles import ProfileBuilder, ProfileError, read_profile

log = logging.getLogger(__name__)


def batch_frame(batch: Batch, time_column: str | None) -> tuple[pd.DataFrame, pd.Series]:
    """One frame for a batch (time column removed), and each row's event time in UTC.

    Rows without a usable time take the moment ``log()`` received them. Lists of
    dicts are gathered into one ``from_records`` call: concatenating many tiny
    frames costs pandas more than profiling them costs whylogs.
    """
    frames: list[pd.DataFrame] = []
    records: list[Mapping[str, Any]] = []
    frame_stamps: list[tuple[int, int]] = []
    record_stamps: list[int] = []
    for rows, at in batch.parts:
        nanos = pd.Timestamp(at).as_unit("ns").value
        if isinstance(rows, pd.DataFrame):
            frames.append(rows)
            frame_stamps.append((nanos, len(rows)))
        else:
            records.extend(rows)
            record_stamps.extend([nanos] * len(rows))
    if records:
        frames.append(pd.DataFrame.from_records(records))
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame = frame.reset_index(drop=True)
    stamps = np.concatenate(
        [np.repeat([n for n, _ in frame_stamps], [c for _, c in frame_stamps]), record_stamps]
    ).astype("int64")
    when = pd.Series(pd.to_datetime(stamps, utc=True), index=frame.index)
    if time_column and time_column in frame.columns:
        event = pd.to_datetime(frame[time_column], utc=True, errors="coerce")
        when = event.astype("datetime64[ns, UTC]").fillna(when)
        frame = frame.drop(columns=[time_column])
    return frame, when


class ProfileLogger(BackgroundSink):
    """Profiles rows off the request path into ``<out_dir>/<prefix>-<start>[-<writer>].bin``."""

    def __init__(
        self,
        out_dir: Path,
        interval: timedelta,
        *,
        time_column: str | None = None,
        exclude: Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
        writer_id: str | None = None,
        prefix: str = "profile",
        clock: Callable[[], datetime] = utc_now,
        max_queue: int = 100_000,
        batch_size: int = 1_000,
        max_wait_seconds: float = 1.0,
        checkpoint_seconds: float = 60.0,
        allowed_lateness: timedelta = timedelta(0),
        max_open_intervals: int = 4,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.interval = check_interval(interval)
        self._time_column = time_column
        self._exclude: tuple[str, ...] = tuple(exclude)
        self._metadata = {
            "interval_seconds": str(int(interval.total_seconds())),
            **(metadata or {}),
        }
        if writer_id:
            self._metadata["writer_id"] = writer_id
        self._suffix = f"-{writer_id}" if writer_id else ""
        self._prefix = prefix
        self._lateness = allowed_lateness
        self._max_open = max(1, max_open_intervals)
        self._open: dict[datetime, ProfileBuilder] = {}
        self._dirty: set[datetime] = set()
        self._watermark: datetime | None = None
        super().__init__(
            name=f"profile-logger:{self.out_dir.name}",
            clock=clock,
            max_queue=max_queue,
            batch_size=batch_size,
            max_wait_seconds=max_wait_seconds,
            checkpoint_seconds=checkpoint_seconds,
        )

    def set_exclude(self, columns: Sequence[str]) -> None:
        """Columns to leave out from now on (e.g. after a new model changed the inputs).

        One reference swap: the writer reads it once per batch, no lock needed.
        """
        self._exclude = tuple(columns)

    def path_for(self, start: datetime) -> Path:
        return self.out_dir / f"{self._prefix}-{stamp(start)}{self._suffix}.bin"

    # -- worker side -------------------------------------------------------
    def _absorb(self, batch: Batch) -> None:
        frame, times = batch_frame(batch, self._time_column)
        exclude = self._exclude
        if exclude:
            frame = frame.drop(columns=[c for c in exclude if c in frame.columns])
        keys = interval_starts(times, self.interval)
        for key, rows in frame.groupby(keys.to_numpy(), sort=True):
            start = pd.Timestamp(key).to_pydatetime()
            self._opened(start).add(rows)
            self._dirty.add(start)
        self._count_done(rows=batch.rows)
        self._advance(times.max().to_pydatetime(warn=False))

    def _opened(self, start: datetime) -> ProfileBuilder:
        """The interval's builder, on top of what an earlier run or flush wrote."""
        if start in self._open:
            return self._open[start]
        path = self.path_for(start)
        base = None
        if path.exists():
            try:
                base = read_profile(path)
            except ProfileError as err:
                # Ours are atomic, so only a foreign or damaged file gets here: keep it aside.
                log.error(
                    "unreadable profile set aside", extra={"path": str(path), "error": str(err)}
                )
                path.replace(path.with_suffix(".bin.unreadable"))
        window = (start, start + self.interval)
        builder = ProfileBuilder(metadata=self._metadata, window=window, base=base)
        self._open[start] = builder
        return builder

    def _advance(self, moment: datetime) -> None:
        if self._watermark is None or moment > self._watermark:
            self._watermark = moment
        closed = [s for s in self._open if s + self.interval + self._lateness <= self._watermark]
        # Out-of-order replays can open many intervals; keep memory bounded.
        overflow = max(0, len(self._open) - len(closed) - self._max_open)
        closed += sorted(s for s in self._open if s not in closed)[:overflow]
        for start in sorted(closed):
            if self._write(start):
                del self._open[start]

    def _tick(self) -> None:
        if self._time_column is None:
            # Rows are stamped by the clock, so the clock also ends their interval.
            self._advance(interval_start(self._clock(), self.interval))

    def _persist(self, final: bool) -> None:
        # A flushed interval stays open: its builder holds everything the file does, so
        # later rows extend it in memory instead of reading the file back first.
        for start in sorted(self._dirty):
            self._write(start)

    def _write(self, start: datetime) -> bool:
        """Write one interval; on failure keep it open (and dirty) for the next try."""
        if start not in self._dirty:
            return True
        path = self.path_for(start)
        try:
            self._open[start].write(path)
        except Exception:
            log.exception("profile not written", extra={"path": str(path)})
            self._count_error()
            return False
        self._dirty.discard(start)
        self._count_done(files=1)
        log.debug("profile written", extra={"path": str(path)})
        return True
