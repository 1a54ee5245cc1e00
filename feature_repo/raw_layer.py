"""The append-only raw layer: event tables partitioned by the UTC day they became knowable.

Layout under ``data/raw``::

    <table>/date=YYYY-MM-DD/part-0.parquet   event tables, one file per day
    <table>/snapshot.parquet                 static tables, written once
    _watermark.json                          the instant everything up to is published

The watermark is an instant: every event with ``knowable_at`` at or before it is
published, so an ingest can run at any time of day. A day whose end the watermark
has passed is complete, and its file is never written again. The day the watermark
is in (the open day) grows with each run: its file is rewritten whole, with the rows
already published first and unchanged, then the new ones, through a temporary file
and a rename, so a reader sees the old file or the new one, never half of one. A
process that wrote the open day's file last extends it from the frame it wrote, as long
as the file is still that one (its inode, size and modification time), instead of
reading it back.

A run that dies before moving the watermark can leave rows after it in the open
day's file; readers ignore them (``knowable_at`` after the watermark) and the
next run drops them before appending its own.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa

from feature_repo.atomic_io import file_signature, write_json, write_parquet
from feature_repo.validation import TableContract, validate_frame

log = logging.getLogger(__name__)

WATERMARK_FILE = "_watermark.json"
KNOWABLE_AT = "knowable_at"


def end_of_day(day: date) -> datetime:
    """The instant a day ends, in UTC: everything knowable before it belongs to ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


ONE_MICROSECOND = timedelta(microseconds=1)


def through_instant(through: date | datetime) -> datetime:
    """What ``--through`` means: an instant as given (UTC if naive); a date, its last
    microsecond, so everything knowable before the next midnight."""
    if isinstance(through, datetime):
        return through.astimezone(UTC) if through.tzinfo else through.replace(tzinfo=UTC)
    return end_of_day(through) - ONE_MICROSECOND


def last_complete_day(through: datetime) -> date:
    """The last UTC day wholly covered by a watermark at ``through``."""
    return (through + ONE_MICROSECOND).astimezone(UTC).date() - timedelta(days=1)


def read_watermark(path: Path) -> datetime | None:
    """A ``_watermark.json``'s instant; an older file's date means the end of that day."""
    if not path.exists():
        return None
    import json

    text = json.loads(path.read_text())["through"]
    if "T" not in text:
        return through_instant(date.fromisoformat(text))
    return datetime.fromisoformat(text)


@functools.lru_cache(maxsize=8192)
def partition_day(path: Path) -> date | None:
    """The day of a file in a ``date=YYYY-MM-DD`` folder; None for any other file
    (a static table's snapshot). Cached: an intraday step asks it of every published
    file of every table, several times a run (a Path's hash is computed once)."""
    name = path.parent.name
    return date.fromisoformat(name.removeprefix("date=")) if name.startswith("date=") else None


# Per table folder, each day file's Path, made once per process: building them anew
# (a year is 365 per table, listed several times a step) took a tenth of an intraday step.
_partition_files: dict[Path, dict[str, Path]] = {}


@dataclass(frozen=True)
class IngestSummary:
    through: datetime
    previous: datetime | None
    rows: dict[str, int]
    days_written: int

    @property
    def nothing_new(self) -> bool:
        return self.days_written == 0 and not any(self.rows.values())


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    """Timestamps as UTC microseconds: what DuckDB, Feast and Parquet readers agree on."""
    frame = frame.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    return pa.Table.from_pandas(frame, preserve_index=False)


class RawLayer:
    def __init__(self, root: Path) -> None:
        self.root = root

    # -- reading -------------------------------------------------------------
    def published_through(self) -> datetime | None:
        """The watermark: every event knowable at or before this instant is published."""
        return read_watermark(self.root / WATERMARK_FILE)

    def watermark(self) -> date | None:
        """The last complete UTC day published (what a daily consumer may read)."""
        through = self.published_through()
        return None if through is None else last_complete_day(through)

    def partition_path(self, table: str, day: date) -> Path:
        return self.root / table / f"date={day.isoformat()}" / "part-0.parquet"

    def snapshot_path(self, table: str) -> Path:
        return self.root / table / "snapshot.parquet"

    def published_files(self, table: str) -> list[Path]:
        """Files of ``table`` covered by the watermark, oldest first."""
        through = self.published_through()
        snapshot = self.snapshot_path(table)
        if snapshot.exists():
            return [snapshot]
        if through is None:
            return []
        # One directory listing, no stat per day: an intraday step lists every table
        # each run. A published day's folder always holds its file (the folder is made
        # just before the file is renamed in, and the watermark moves after both).
        try:
            names = sorted(n for n in os.listdir(self.root / table) if n.startswith("date="))
        except FileNotFoundError:
            return []
        last = f"date={through.date().isoformat()}"
        folder = self.root / table
        made = _partition_files.setdefault(folder, {})
        files = []
        for name in names:
            if name > last:
                break  # sorted: every later day is after the watermark too
            path = made.get(name)
            if path is None:
                path = made[name] = folder / name / "part-0.parquet"
            files.append(path)
        return files

    # -- publishing ------------------------------------------------------------
    def publish(
        self,
        events: dict[str, tuple[pd.DataFrame, TableContract]],
        static: dict[str, tuple[pd.DataFrame, TableContract]],
        through: date | datetime,
    ) -> IngestSummary:
        """Validate every new batch, then write them and move the watermark.

        ``events`` hold full tables with a ``knowable_at`` column; only rows that
        became knowable after the current watermark and at or before ``through``
        are new. Every batch is validated before the first byte is written, so a
        bad batch publishes nothing.
        """
        through = through_instant(through)
        previous = self.published_through()
        if previous is not None and through < previous:
            raise ValueError(
                f"--through {through.isoformat()} is before the published watermark "
                f"{previous.isoformat()}; the raw layer is append-only"
            )

        planned: list[tuple[Path, pd.DataFrame]] = []
        rows: dict[str, int] = {}
        for table, (frame, contract) in events.items():
            knowable = frame[KNOWABLE_AT]
            mask = knowable <= through
            if previous is not None:
                mask &= knowable > previous
            new = frame.loc[mask]
            rows[table] = len(new)
            days = new[KNOWABLE_AT].dt.floor("D").dt.date
            for day, batch in new.groupby(days, sort=True):
                target = self.partition_path(table, day)
                batch = batch.sort_values(list(contract.unique_key) or [KNOWABLE_AT])
                batch = _after_published(target, batch, previous)
                validate_frame(batch, contract, str(target.relative_to(self.root.parent)))
                planned.append((target, batch))
        for table, (frame, contract) in static.items():
            target = self.snapshot_path(table)
            if target.exists():
                continue
            validate_frame(frame, contract, str(target.relative_to(self.root.parent)))
            planned.append((target, frame.reset_index(drop=True)))
            rows[table] = len(frame)

        if not planned and through == previous:
            # Idle: already published through this instant. Nothing is rewritten, not
            # even the watermark's record (its "published_at" would change).
            return IngestSummary(through=through, previous=previous, rows=rows, days_written=0)
        for target, batch in planned:
            write_parquet(_to_arrow(batch), target)
            if partition_day(target) is not None:
                _remember_written(target, batch)
        write_json(
            {
                "through": through.isoformat(),
                "published_at": datetime.now(UTC).isoformat(),
                "rows": rows,
            },
            self.root / WATERMARK_FILE,
        )
        days_written = sum(1 for target, _ in planned if target.name == "part-0.parquet")
        return IngestSummary(
            through=through, previous=previous, rows=rows, days_written=days_written
        )


def _after_published(target: Path, batch: pd.DataFrame, previous: datetime | None) -> pd.DataFrame:
    """The open day's file: its published rows, unchanged and first, then ``batch``.

    Rows after the watermark are a dead run's leftovers (see the module docstring)."""
    if previous is None or not target.exists():
        return batch.reset_index(drop=True)
    published = _written_frame(target, batch)
    if published is None:
        # Read back as microseconds in pyarrow's UTC; the batch's own dtypes keep the
        # concatenation typed (mixed time zone objects would make it ``object``).
        published = pd.read_parquet(target)[list(batch.columns)]
        published = published.astype(batch.dtypes.to_dict())
    published = published.loc[published[KNOWABLE_AT] <= previous]
    if published.empty:
        return batch.reset_index(drop=True)
    return pd.concat([published, batch], ignore_index=True)


# Per table folder, the open day's file as this process last wrote it: its stat
# signature and the frame written. A scheduler or a replay extends the open day every
# step, and reading the file back (then retyping it) cost a tenth of an intraday step.
# The frame is used only while the file on disk is still the one written (a file put
# there by anyone else has another inode, size or mtime), so it is the file's content.
_written: dict[Path, tuple[Path, tuple[int, int, int], pd.DataFrame]] = {}


def _remember_written(target: Path, frame: pd.DataFrame) -> None:
    signature = file_signature(target)
    if signature is not None:
        _written[target.parent.parent] = (target, signature, frame)


def _written_frame(target: Path, batch: pd.DataFrame) -> pd.DataFrame | None:
    """The frame this process wrote to ``target``, typed like ``batch``; None when the
    file is not (or no longer) the one it wrote."""
    cached = _written.get(target.parent.parent)
    if cached is None or cached[0] != target or cached[1] != file_signature(target):
        return None
    frame = cached[2]
    if list(frame.columns) != list(batch.columns) or not frame.dtypes.equals(batch.dtypes):
        return None
    return frame
