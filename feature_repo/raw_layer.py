"""The immutable raw layer: event tables partitioned by the UTC day they became knowable.

Layout under ``data/raw``::

    <table>/date=YYYY-MM-DD/part-0.parquet   event tables, one file per day
    <table>/snapshot.parquet                 static tables, written once
    _watermark.json                          the last day that is published

A day is *published* once the watermark covers it. Published files are never
rewritten. A run that dies before moving the watermark leaves only unpublished
files behind, which the next run overwrites.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa

from feature_repo.atomic_io import write_json, write_parquet
from feature_repo.validation import TableContract, validate_frame

log = logging.getLogger(__name__)

WATERMARK_FILE = "_watermark.json"
KNOWABLE_AT = "knowable_at"


def end_of_day(day: date) -> datetime:
    """The instant a day ends, in UTC: everything knowable before it belongs to ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


def partition_day(path: Path) -> date | None:
    """The day of a file in a ``date=YYYY-MM-DD`` folder; None for any other file
    (a static table's snapshot)."""
    name = path.parent.name
    return date.fromisoformat(name.removeprefix("date=")) if name.startswith("date=") else None


@dataclass(frozen=True)
class IngestSummary:
    through: date
    previous: date | None
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
    def watermark(self) -> date | None:
        path = self.root / WATERMARK_FILE
        if not path.exists():
            return None
        import json

        return date.fromisoformat(json.loads(path.read_text())["through"])

    def partition_path(self, table: str, day: date) -> Path:
        return self.root / table / f"date={day.isoformat()}" / "part-0.parquet"

    def snapshot_path(self, table: str) -> Path:
        return self.root / table / "snapshot.parquet"

    def published_files(self, table: str) -> list[Path]:
        """Files of ``table`` covered by the watermark, oldest first."""
        through = self.watermark()
        snapshot = self.snapshot_path(table)
        if snapshot.exists():
            return [snapshot]
        if through is None:
            return []
        files = []
        for part in sorted((self.root / table).glob("date=*/part-0.parquet")):
            day = partition_day(part)
            if day is not None and day <= through:
                files.append(part)
        return files

    # -- publishing ------------------------------------------------------------
    def publish(
        self,
        events: dict[str, tuple[pd.DataFrame, TableContract]],
        static: dict[str, tuple[pd.DataFrame, TableContract]],
        through: date,
    ) -> IngestSummary:
        """Validate every new batch, then write them and move the watermark.

        ``events`` hold full tables with a ``knowable_at`` column; only rows that
        became knowable after the current watermark and by the end of ``through``
        are new. Every batch is validated before the first byte is written, so a
        bad batch publishes nothing.
        """
        previous = self.watermark()
        if previous is not None and through < previous:
            raise ValueError(
                f"--through {through} is before the published watermark {previous}; "
                "the raw layer is append-only"
            )
        start = end_of_day(previous) if previous else None
        stop = end_of_day(through)

        planned: list[tuple[Path, pd.DataFrame]] = []
        rows: dict[str, int] = {}
        for table, (frame, contract) in events.items():
            knowable = frame[KNOWABLE_AT]
            mask = knowable < stop
            if start is not None:
                mask &= knowable >= start
            new = frame.loc[mask]
            rows[table] = len(new)
            days = new[KNOWABLE_AT].dt.floor("D").dt.date
            for day, batch in new.groupby(days, sort=True):
                target = self.partition_path(table, day)
                batch = batch.sort_values(list(contract.unique_key) or [KNOWABLE_AT])
                batch = batch.reset_index(drop=True)
                validate_frame(batch, contract, str(target.relative_to(self.root.parent)))
                planned.append((target, batch))
        for table, (frame, contract) in static.items():
            target = self.snapshot_path(table)
            if target.exists():
                continue
            validate_frame(frame, contract, str(target.relative_to(self.root.parent)))
            planned.append((target, frame.reset_index(drop=True)))
            rows[table] = len(frame)

        for target, batch in planned:
            write_parquet(_to_arrow(batch), target)
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
