"""Compute feature tables from the raw layer with DuckDB SQL.

Each ``<name>.sql`` in the dataset's ``sql/`` folder is one feature table. A
query reads the raw tables as views and returns join keys, ``event_timestamp``
(when the value became knowable), ``created`` and the feature columns, limited
to ``[$window_start, $window_end]``. Output is partitioned by event day, like the
raw layer, so readers and incremental materialization can prune by path.

Builds are incremental and follow the raw watermark, an instant: a build
recomputes the day the previous build ended in (the open day) and any later
days, up to the watermark, and replaces their partitions. Earlier days cannot
change, because every value there was computed from raw data that was already
published and is immutable. So a build every 15 minutes costs a day's work at
most, however long the history.

A query whose rows are snapshots at fixed instants says so in a header line,

    -- snapshots: hourly          (or daily: at each UTC midnight)

and is skipped by a build whose new stretch of time holds no such instant
(a daily table is rebuilt once a day, not at every intraday run).

A query may say how far back an incremental build must read, in a header line:

    -- incremental: raw 30 days, keys origin, dest

The raw event tables then hold only the days from 30 days before the window
(not the whole history, so a daily build costs the same however long the
history), and a view ``previous_keys`` holds the key columns of the table's
own rows on the last day built: the entities seen before, which a windowed
query needs to keep emitting rows for entities with no recent events. Without
the line, or on a first build, the query reads every published day and
``previous_keys`` is empty.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from feature_repo.atomic_io import write_json
from feature_repo.partition_checksums import publish_partitions
from feature_repo.raw_layer import (
    KNOWABLE_AT,
    ONE_MICROSECOND,
    RawLayer,
    last_complete_day,
    partition_day,
    read_watermark,
)

log = logging.getLogger(__name__)

WATERMARK_FILE = "_watermark.json"
EARLIEST = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
DAY = timedelta(days=1)


@dataclass(frozen=True)
class FeatureBuildSummary:
    through: datetime
    rows: dict[str, int]
    seconds: float


def feature_table_names(sql_dir: Path) -> list[str]:
    return sorted(p.stem for p in sql_dir.glob("*.sql"))


def connect_raw(raw: RawLayer, tables: list[str]) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per published raw table."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    create_raw_views(con, published(raw, tables), through=raw.published_through())
    return con


def published(raw: RawLayer, tables: list[str]) -> dict[str, list[Path]]:
    """Each raw table's published files, oldest first (listed once: a year is 365 files)."""
    files = {table: raw.published_files(table) for table in tables}
    for table, paths in files.items():
        if not paths:
            raise RuntimeError(f"raw table {table!r} has no published data; run ingest first")
    return files


def create_raw_views(
    con: duckdb.DuckDBPyConnection,
    files: dict[str, list[Path]],
    since: date | None = None,
    through: datetime | None = None,
) -> None:
    """(Re)define a view per raw table over its files; with ``since``, over the days from
    then on (a static table's snapshot always); with ``through`` (the raw watermark),
    without rows a dead ingest left after it in the open day's file."""
    for table, paths in files.items():
        recent = paths if since is None else [p for p in paths if _holds_days_from(p, since)]
        # No day in range: an empty view, with the columns of the newest file.
        listing = ", ".join(f"'{f}'" for f in recent or paths[-1:])
        where = "false" if not recent else "true"
        if recent and through is not None and partition_day(recent[-1]) is not None:
            where = f"{KNOWABLE_AT} <= '{through.isoformat()}'::TIMESTAMPTZ"
        con.execute(
            f"CREATE OR REPLACE VIEW {table} AS "
            f"SELECT * FROM read_parquet([{listing}], hive_partitioning = false) WHERE {where}"
        )


def _holds_days_from(path: Path, since: date) -> bool:
    day = partition_day(path)
    return day is None or day >= since  # a snapshot holds every day


INCREMENTAL = re.compile(
    r"^--\s*incremental:\s*raw\s+(\d+)\s+days?(?:\s*,\s*keys\s+(.+?))?\s*$", re.MULTILINE
)


@dataclass(frozen=True)
class Lookback:
    """What an incremental build of one query needs (its ``-- incremental:`` line)."""

    raw_days: int
    keys: tuple[str, ...]

    @classmethod
    def of(cls, sql: str) -> Lookback | None:
        match = INCREMENTAL.search(sql)
        if match is None:
            return None
        keys = tuple(k.strip() for k in (match.group(2) or "").split(",") if k.strip())
        return cls(int(match.group(1)), keys)


SNAPSHOTS = re.compile(r"^--\s*snapshots:\s*(hourly|daily)\b", re.MULTILINE)
SNAPSHOT_PERIODS = {"hourly": timedelta(hours=1), "daily": timedelta(days=1)}


def snapshot_period(sql: str) -> timedelta | None:
    """How often a query emits rows, from its ``-- snapshots: hourly|daily`` line: it emits
    them only at multiples of the period since the epoch (UTC), so a build whose new
    stretch holds no such instant would rewrite the same rows. None: rows at any time."""
    match = SNAPSHOTS.search(sql)
    return SNAPSHOT_PERIODS[match.group(1)] if match else None


_local = threading.local()


def _build_connection() -> duckdb.DuckDBPyConnection:
    """This thread's DuckDB connection for builds, opened once: opening one (with the
    time zone set) takes 30-100 ms, a fifth of an intraday step. Every object a build
    defines is created or replaced by the build that uses it."""
    con = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET threads = {max(1, os.cpu_count() or 2)}")
        _local.con = con
    return con


def _any_event_after(
    con: duckdb.DuckDBPyConnection, files: dict[str, list[Path]], instant: datetime
) -> bool:
    """Whether a raw event table among ``files`` (views already defined) holds an event
    knowable after ``instant``."""
    for table, paths in files.items():
        if partition_day(paths[-1]) is None:  # a static snapshot
            continue
        found = con.execute(
            f"SELECT 1 FROM {table} WHERE {KNOWABLE_AT} > $after LIMIT 1", {"after": instant}
        ).fetchone()
        if found:
            return True
    return False


def _floor(instant: datetime, period: timedelta) -> datetime:
    return EARLIEST + (instant - EARLIEST) // period * period


class FeatureBuilder:
    def __init__(
        self,
        raw: RawLayer,
        features_dir: Path,
        sql_dir: Path,
        raw_tables: list[str],
        static_known_since: datetime,
    ) -> None:
        self.raw = raw
        self.features_dir = features_dir
        self.sql_dir = sql_dir
        self.raw_tables = raw_tables
        self.static_known_since = static_known_since

    def published_through(self) -> datetime | None:
        """The raw watermark the tables were last built to (everything knowable by then)."""
        return read_watermark(self.features_dir / WATERMARK_FILE)

    def watermark(self) -> date | None:
        """The last complete UTC day the tables cover."""
        through = self.published_through()
        return None if through is None else last_complete_day(through)

    def table_glob(self, name: str) -> Path:
        return self.features_dir / name / "date=*" / "part-0.parquet"

    def build(self, full: bool = False) -> FeatureBuildSummary:
        """Extend the tables to the raw watermark.

        The window starts at the midnight before the last build's watermark, so the
        open day is recomputed whole and its partition replaced (the day is small;
        earlier days stay as they are), and ends at the raw watermark, inclusive: a
        run at any time of day brings every table up to it.
        """
        started = time.perf_counter()
        through = self.raw.published_through()
        if through is None:
            raise RuntimeError("the raw layer is empty; run `python -m feature_repo ingest` first")
        previous = None if full else self.published_through()
        if previous is not None and previous == through:
            # Built to the raw watermark already: no day to recompute, nothing to rewrite.
            names = feature_table_names(self.sql_dir)
            return FeatureBuildSummary(
                through, dict.fromkeys(names, 0), time.perf_counter() - started
            )
        window_start = _floor(previous + ONE_MICROSECOND, DAY) if previous else EARLIEST
        params = {
            "window_start": window_start,
            "window_end": through,
            "static_known_since": self.static_known_since,
        }
        con = _build_connection()
        rows: dict[str, int] = {}
        files = published(self.raw, self.raw_tables)
        for name in feature_table_names(self.sql_dir):
            sql = (self.sql_dir / f"{name}.sql").read_text()
            period = snapshot_period(sql)
            if previous is not None and period is not None and _floor(through, period) <= previous:
                rows[name] = 0  # no snapshot instant since the last build: nothing new
                continue
            # Rows at event times only: without new input events there is nothing new.
            unchanged_unless_new_events = previous if period is None else None
            rows[name] = self._build_table(
                con, name, sql, params, files, through, unchanged_unless_new_events
            )
        write_json(
            {"through": through.isoformat(), "rows": rows}, self.features_dir / WATERMARK_FILE
        )
        return FeatureBuildSummary(through, rows, time.perf_counter() - started)

    def _build_table(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str,
        sql: str,
        params: dict,
        files: dict[str, list[Path]],
        through: datetime,
        unchanged_unless_new_events: datetime | None = None,
    ) -> int:
        """Build one table; 0 without building when ``unchanged_unless_new_events`` is
        given and no raw table the query reads gained an event after it."""
        used = {k: v for k, v in params.items() if f"${k}" in sql}
        read = {t: paths for t, paths in files.items() if re.search(rf"\b{t}\b", sql)}
        self._scope(con, name, Lookback.of(sql), params["window_start"], read, through)
        if unchanged_unless_new_events is not None and not _any_event_after(
            con, read, unchanged_unless_new_events
        ):
            return 0
        target = self.features_dir / name
        target.mkdir(parents=True, exist_ok=True)
        # Named like every temporary file (``.<name>.<random>.tmp``), so that the next
        # ingest sweeps it if this run is killed (``feature_repo.leftovers``).
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=self.features_dir))
        try:
            # The query runs inside the COPY, which returns the rows it wrote: no table in
            # between, and no second query to count it. The query on lines of its own: a
            # trailing comment in the file must not swallow the ")".
            (count,) = con.execute(
                f"COPY (SELECT *, strftime(event_timestamp, '%Y-%m-%d') AS date FROM (\n{sql}\n) "
                f"ORDER BY ALL) TO '{staging}' "
                "(FORMAT PARQUET, PARTITION_BY (date), COMPRESSION zstd, "
                "WRITE_PARTITION_COLUMNS false)",
                used,
            ).fetchone() or (0,)
            staged = {part.parent.name: part for part in sorted(staging.glob("date=*/*.parquet"))}
            publish_partitions(target, staged)  # renamed into place, checksums recorded
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        # Per table at DEBUG: "features built" sums them at INFO.
        log.debug("feature table built", extra={"table": name, "rows": count})
        return int(count)

    def _scope(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str,
        lookback: Lookback | None,
        window_start: datetime,
        files: dict[str, list[Path]],
        through: datetime | None = None,
    ) -> None:
        """The raw views and ``previous_keys`` for one query (see the module docstring)."""
        since, previous = self.read_scope(name, lookback, window_start)
        create_raw_views(con, files, since, through)
        keys = lookback.keys if lookback else ()
        if not keys:  # never another query's
            con.execute("DROP VIEW IF EXISTS previous_keys")
            return
        columns = ", ".join(keys)
        if previous is not None:
            source = f"SELECT DISTINCT {columns} FROM read_parquet('{previous}')"
        else:  # a first build reads all of history: no entity can be missed
            source = "SELECT " + ", ".join(f"NULL AS {k}" for k in keys) + " WHERE false"
        con.execute(f"CREATE OR REPLACE VIEW previous_keys AS {source}")

    def read_scope(
        self, name: str, lookback: Lookback | None, window_start: datetime
    ) -> tuple[date | None, Path | None]:
        """For one query's build: the first raw day to read (None: all of history), and
        the table's last built day file that ``previous_keys`` comes from (None on a
        first build, which reads all of history and so can miss no entity)."""
        last_day = window_start.date() - timedelta(days=1)
        previous = self.features_dir / name / f"date={last_day.isoformat()}" / "part-0.parquet"
        incremental = (
            lookback is not None
            and window_start > EARLIEST
            and (not lookback.keys or previous.exists())
        )
        if not incremental or lookback is None:
            return None, None
        return window_start.date() - timedelta(days=lookback.raw_days), previous
