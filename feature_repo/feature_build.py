"""Compute feature tables from the raw layer with DuckDB SQL.

Each ``<name>.sql`` in the dataset's ``sql/`` folder is one feature table. A
query reads the raw tables as views and returns join keys, ``event_timestamp``
(when the value became knowable), ``created`` and the feature columns, limited
to ``[$window_start, $window_end]``. Output is partitioned by event day, like the
raw layer, so readers and incremental materialization can prune by path.

Builds are incremental: only days from the previous build's boundary onwards
are recomputed. Earlier days cannot change, because every value there was
computed from raw data that was already published and is immutable.

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

import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from feature_repo.atomic_io import write_json
from feature_repo.raw_layer import RawLayer, end_of_day, partition_day

log = logging.getLogger(__name__)

WATERMARK_FILE = "_watermark.json"
EARLIEST = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


@dataclass(frozen=True)
class FeatureBuildSummary:
    through: date
    rows: dict[str, int]
    seconds: float


def feature_table_names(sql_dir: Path) -> list[str]:
    return sorted(p.stem for p in sql_dir.glob("*.sql"))


def connect_raw(raw: RawLayer, tables: list[str]) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per published raw table."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    create_raw_views(con, published(raw, tables))
    return con


def published(raw: RawLayer, tables: list[str]) -> dict[str, list[Path]]:
    """Each raw table's published files, oldest first (listed once: a year is 365 files)."""
    files = {table: raw.published_files(table) for table in tables}
    for table, paths in files.items():
        if not paths:
            raise RuntimeError(f"raw table {table!r} has no published data; run ingest first")
    return files


def create_raw_views(
    con: duckdb.DuckDBPyConnection, files: dict[str, list[Path]], since: date | None = None
) -> None:
    """(Re)define a view per raw table over its files; with ``since``, over the days from
    then on (a static table's snapshot always)."""
    for table, paths in files.items():
        recent = paths if since is None else [p for p in paths if _holds_days_from(p, since)]
        # No day in range: an empty view, with the columns of the newest file.
        listing = ", ".join(f"'{f}'" for f in recent or paths[-1:])
        con.execute(
            f"CREATE OR REPLACE VIEW {table} AS "
            f"SELECT * FROM read_parquet([{listing}], hive_partitioning = false)"
            + ("" if recent else " WHERE false")
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

    def watermark(self) -> date | None:
        path = self.features_dir / WATERMARK_FILE
        if not path.exists():
            return None
        return date.fromisoformat(json.loads(path.read_text())["through"])

    def table_glob(self, name: str) -> Path:
        return self.features_dir / name / "date=*" / "part-0.parquet"

    def build(self, full: bool = False) -> FeatureBuildSummary:
        started = time.perf_counter()
        through = self.raw.watermark()
        if through is None:
            raise RuntimeError("the raw layer is empty; run `python -m feature_repo ingest` first")
        previous = None if full else self.watermark()
        window_start = end_of_day(previous) if previous else EARLIEST
        window_end = end_of_day(through)
        params = {
            "window_start": window_start,
            "window_end": window_end,
            "static_known_since": self.static_known_since,
        }
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        threads = max(1, (os.cpu_count() or 2))
        con.execute(f"SET threads = {threads}")
        rows: dict[str, int] = {}
        files = published(self.raw, self.raw_tables)
        for name in feature_table_names(self.sql_dir):
            rows[name] = self._build_table(con, name, params, files)
        con.close()
        write_json(
            {"through": through.isoformat(), "rows": rows}, self.features_dir / WATERMARK_FILE
        )
        return FeatureBuildSummary(through, rows, time.perf_counter() - started)

    def _build_table(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str,
        params: dict,
        files: dict[str, list[Path]],
    ) -> int:
        sql = (self.sql_dir / f"{name}.sql").read_text()
        used = {k: v for k, v in params.items() if f"${k}" in sql}
        self._scope(con, name, Lookback.of(sql), params["window_start"], files)
        target = self.features_dir / name
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.features_dir))
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE staged AS {sql}", used)
            (count,) = con.execute("SELECT count(*) FROM staged").fetchone() or (0,)
            con.execute(
                f"COPY (SELECT *, strftime(event_timestamp, '%Y-%m-%d') AS date FROM staged "
                f"ORDER BY ALL) TO '{staging}' "
                "(FORMAT PARQUET, PARTITION_BY (date), COMPRESSION zstd, "
                "WRITE_PARTITION_COLUMNS false)"
            )
            for part in sorted(staging.glob("date=*/*.parquet")):
                final = target / part.parent.name / "part-0.parquet"
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, final)  # same filesystem: atomic per file
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
    ) -> None:
        """The raw views and ``previous_keys`` for one query (see the module docstring)."""
        last_day = window_start.date() - timedelta(days=1)
        previous = self.features_dir / name / f"date={last_day.isoformat()}" / "part-0.parquet"
        incremental = (
            lookback is not None
            and window_start > EARLIEST
            and (not lookback.keys or previous.exists())
        )
        since = (
            window_start.date() - timedelta(days=lookback.raw_days)
            if incremental and lookback is not None
            else None
        )
        create_raw_views(con, files, since)
        keys = lookback.keys if lookback else ()
        if not keys:  # never another query's
            con.execute("DROP VIEW IF EXISTS previous_keys")
            return
        columns = ", ".join(keys)
        if incremental:
            source = f"SELECT DISTINCT {columns} FROM read_parquet('{previous}')"
        else:  # a first build reads all of history: no entity can be missed
            source = "SELECT " + ", ".join(f"NULL AS {k}" for k in keys) + " WHERE false"
        con.execute(f"CREATE OR REPLACE VIEW previous_keys AS {source}")
