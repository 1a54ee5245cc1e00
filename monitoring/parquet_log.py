"""Row logs as Parquet parts, one per interval per flush, written off the request path.

The prediction log and the served-features log are both this: rows queue
through a ``BackgroundSink``, a writer thread buffers them and writes
``<prefix>-<interval start>[-<writer>]-<part id>.parquet``, each part
atomically. A crash loses at most the unflushed buffer and never leaves a
partial file. Parts are never rewritten, so memory stays bounded however long
the interval, and several writers (BentoML workers) never share a file.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypedDict

import pandas as pd
import pyarrow as pa

# Imported now rather than on the first write: it registers a threading atexit hook,
# which fails once the interpreter is exiting, i.e. in the atexit close of a log
# whose owner never called close().
import pyarrow.pandas_compat

from feature_repo.atomic_io import file_signature, write_parquet
from monitoring.background import BackgroundSink, Batch
from monitoring.intervals import check_interval, interval_starts, parse_stamp, stamp, utc_now
from monitoring.profiler import batch_frame


class LogOptions(TypedDict, total=False):
    """What a log built on :class:`ParquetLog` passes through to it unchanged."""

    writer_id: str | None
    clock: Callable[[], datetime]
    max_queue: int
    batch_size: int
    max_wait_seconds: float
    checkpoint_seconds: float
    max_buffer_rows: int


class ParquetLog(BackgroundSink):
    """Appends rows to ``<out_dir>`` as Parquet parts, filed by ``time_column``.

    Rows without a usable time are filed under the moment ``log()`` received
    them. With a ``schema`` every part has exactly those columns and types;
    without one, each part keeps whatever columns its rows had (readers union them).
    """

    def __init__(
        self,
        out_dir: Path,
        interval: timedelta,
        *,
        time_column: str,
        prefix: str,
        schema: pa.Schema | None = None,
        writer_id: str | None = None,
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
        self.time_column = time_column
        self.schema = schema
        self._prefix = prefix
        self._suffix = f"-{writer_id}" if writer_id else ""
        self._max_buffer = max_buffer_rows
        self._buffer: list[pd.DataFrame] = []
        self._buffered = 0
        super().__init__(
            name=f"{prefix}-log:{self.out_dir.name}",
            clock=clock,
            max_queue=max_queue,
            batch_size=batch_size,
            max_wait_seconds=max_wait_seconds,
            checkpoint_seconds=checkpoint_seconds,
        )

    def _normalize(self, frame: pd.DataFrame, received: pd.Series) -> pd.DataFrame:
        """The rows as they are stored; the time column is always UTC microseconds."""
        when = frame.get(self.time_column, pd.Series(index=frame.index, dtype="object"))
        frame = frame.copy()
        frame[self.time_column] = (
            pd.to_datetime(when, utc=True, errors="coerce")
            .astype("datetime64[us, UTC]")
            .fillna(received.astype("datetime64[us, UTC]"))
        )
        return frame

    def _absorb(self, batch: Batch) -> None:
        frame, received = batch_frame(batch, None)
        out = self._normalize(frame, received)
        self._buffer.append(out)
        self._buffered += len(out)
        self._count_done(rows=batch.rows)
        if self._buffered >= self._max_buffer:
            self._persist(final=False)

    def _persist(self, final: bool) -> None:
        if not self._buffer:
            return
        # Batches may differ in columns, or hold a feature that was None in every
        # row of one batch; concat aligns them. pandas warns that all-None columns
        # will soon count when it picks the dtype (object rather than float), but
        # Arrow infers the same type from either, so the part is the same.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            frame = pd.concat(self._buffer, ignore_index=True)
        keys = interval_starts(frame[self.time_column], self.interval)
        pending = dict(iter(frame.groupby(keys.to_numpy(), sort=True)))
        try:
            for key in list(pending):
                start = pd.Timestamp(key).to_pydatetime()
                part = f"{stamp(start)}{self._suffix}-{uuid.uuid4().hex[:12]}"
                # One thread: from_pandas' pool refuses work once the interpreter
                # is exiting, which is when the atexit close persists the last rows.
                table = pa.Table.from_pandas(
                    pending[key], schema=self.schema, preserve_index=False, nthreads=1
                )
                write_parquet(table, self.out_dir / f"{self._prefix}-{part}.parquet")
                del pending[key]
                self._count_done(files=1)
        finally:
            # Keep only what was not written, so a retry never duplicates a part.
            self._buffer = list(pending.values())
            self._buffered = sum(len(f) for f in self._buffer)


def time_range(path: Path, column: str) -> tuple[datetime, datetime] | None:
    """A part's first and last ``column`` value from its footer statistics (no data read)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    index = meta.schema.to_arrow_schema().get_field_index(column)
    if index < 0 or meta.num_row_groups == 0:
        return None
    lows, highs = [], []
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(index).statistics
        if stats is None or not stats.has_min_max:
            return None
        lows.append(stats.min)
        highs.append(stats.max)
    return min(lows), max(highs)


# Each part's time range, by path and column, with the file's stat signature: parts are
# never rewritten, and a loop that reads a week of its log every day would otherwise open
# the footer of every part of the log's whole history (a part's name gives only where its
# interval starts, not how long it is).
_ranges: dict[tuple[Path, str], tuple[tuple[int, int, int], tuple[datetime, datetime] | None]] = {}


def _part_time_range(path: Path, column: str) -> tuple[datetime, datetime] | None:
    signature = file_signature(path)
    cached = _ranges.get((path, column))
    if cached is not None and signature is not None and cached[0] == signature:
        return cached[1]
    span = time_range(path, column)
    if signature is not None:
        _ranges[(path, column)] = (signature, span)
    return span


def log_parts(
    directory: Path,
    prefix: str,
    start: datetime | None = None,
    end: datetime | None = None,
    time_column: str | None = None,
) -> list[Path]:
    """Parts that can hold rows in ``[start, end)``, oldest first.

    A part's interval start (in its name) prunes by ``end``; by ``start`` it
    takes the footer's statistics of ``time_column``, because a name does not
    say how long its interval was.
    """
    parts = []
    for path in sorted(Path(directory).glob(f"{prefix}-*.parquet")):
        try:
            began = parse_stamp(path.name[len(prefix) + 1 :].split("-", 1)[0])
        except ValueError:
            continue  # another log sharing the folder, e.g. prefix "x" vs "x-y"
        if end is not None and began >= end:
            continue
        if start is not None and time_column is not None:
            span = _part_time_range(path, time_column)
            if span is not None and span[1] < start:
                continue
        parts.append(path)
    return parts


def read_log(
    directory: Path,
    prefix: str,
    time_column: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    schema: pa.Schema | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Rows with ``start <= time_column < end``, oldest first."""
    frames = [
        pd.read_parquet(path, columns=columns)
        for path in log_parts(directory, prefix, start, end, time_column)
    ]
    frames = [f for f in frames if len(f)]
    if not frames:
        if schema is not None:
            return schema.empty_table().to_pandas()
        return pd.DataFrame({time_column: pd.Series([], dtype="datetime64[us, UTC]")})
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if start is not None:
        frame = frame[frame[time_column] >= pd.Timestamp(start)]
    if end is not None:
        frame = frame[frame[time_column] < pd.Timestamp(end)]
    return frame.sort_values(time_column, kind="stable").reset_index(drop=True)
