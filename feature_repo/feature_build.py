"""Compute feature tables from the raw layer with DuckDB SQL.

Each ``<name>.sql`` in the dataset's ``sql/`` folder is one feature table. A
query reads the raw tables as views and returns join keys, ``event_timestamp``
(when the value became knowable), ``created`` and the feature columns, limited
to ``[$window_start, $window_end]``. Output is partitioned by event day, like the
raw layer, so readers and incremental materialization can prune by path.

Builds are incremental: only days from the previous build's boundary onwards
are recomputed. Earlier days cannot change, because every value there was
computed from raw data that was already published and is immutable.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb

from feature_repo.atomic_io import write_json
from feature_repo.raw_layer import RawLayer, end_of_day

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
    for table in tables:
        files = raw.published_files(table)
        if not files:
            raise RuntimeError(f"raw table {table!r} has no published data; run ingest first")
        listing = ", ".join(f"'{f}'" for f in files)
        con.execute(
            f"CREATE VIEW {table} AS "
            f"SELECT * FROM read_parquet([{listing}], hive_partitioning = false)"
        )
    return con


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
        con = connect_raw(self.raw, self.raw_tables)
        threads = max(1, (os.cpu_count() or 2))
        con.execute(f"SET threads = {threads}")
        rows: dict[str, int] = {}
        for name in feature_table_names(self.sql_dir):
            rows[name] = self._build_table(con, name, params)
        con.close()
        write_json(
            {"through": through.isoformat(), "rows": rows}, self.features_dir / WATERMARK_FILE
        )
        return FeatureBuildSummary(through, rows, time.perf_counter() - started)

    def _build_table(self, con: duckdb.DuckDBPyConnection, name: str, params: dict) -> int:
        sql = (self.sql_dir / f"{name}.sql").read_text()
        used = {k: v for k, v in params.items() if f"${k}" in sql}
        target = self.features_dir / name
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.features_dir))
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE staged AS {sql}", used)
            count = con.execute("SELECT count(*) FROM staged").fetchone()[0]
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
        log.info("feature table built", extra={"table": name, "rows": count})
        return int(count)
