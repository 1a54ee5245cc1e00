"""The feature build on Spark: the same SQL files, the same incremental windows, the
same output layout (``<view>/date=YYYY-MM-DD/part-0.parquet``) as
:class:`feature_repo.feature_build.FeatureBuilder`, which it extends.

Each query is transpiled from DuckDB's dialect (:mod:`feature_repo.spark_sql`) and
runs on ``SPARK_MASTER``. Raw tables become temporary views over their day files,
scoped as the query's ``-- incremental:`` line says, exactly as on DuckDB. The
result is written by the executors partitioned by day, one file per day, into a
staging folder next to the table, and each day's file is then renamed into place
(atomic per file, as on DuckDB). Executors and driver must therefore see the data
directory at the same path: on one machine that is given; on a real cluster it is
shared storage (NFS, or a mounted object store).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from feature_repo.feature_build import FeatureBuilder, Lookback, _holds_days_from
from feature_repo.partition_checksums import publish_partitions
from feature_repo.raw_layer import KNOWABLE_AT, partition_day
from feature_repo.settings import Settings
from feature_repo.spark_sql import to_spark_sql

log = logging.getLogger(__name__)


class SparkFeatureBuilder(FeatureBuilder):
    def __init__(self, settings: Settings, **parts: Any) -> None:
        super().__init__(**parts)
        self.settings = settings
        self._spark: Any = None

    @property
    def spark(self) -> Any:
        if self._spark is None:
            from feature_repo.spark_session import open_spark

            self._spark = open_spark(self.settings)
        return self._spark

    def _build_table(
        self,
        con: Any,
        name: str,
        sql: str,
        params: dict,
        files: dict[str, list[Path]],
        through: datetime,
        unchanged_unless_new_events: datetime | None = None,
    ) -> int:
        """One table on Spark (``con``, the DuckDB connection of the base build, is unused).

        ``unchanged_unless_new_events`` is a shortcut of the DuckDB build; Spark builds
        the table anyway, which gives the same rows (the open day is recomputed whole)."""
        from pyspark.sql import functions as F

        self._spark_scope(name, Lookback.of(sql), params["window_start"], files, through)
        query = to_spark_sql(sql, {k: v for k, v in params.items() if f"${k}" in sql})
        target = self.features_dir / name
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{name}.spark.", suffix=".tmp", dir=self.features_dir)
        )
        try:
            staged = self.spark.sql(query)
            columns = staged.columns
            out = staged.withColumn("date", F.date_format("event_timestamp", "yyyy-MM-dd"))
            # One task per day, so one file per day folder, rows sorted as DuckDB's ORDER BY ALL.
            out.repartition("date").sortWithinPartitions(*columns).write.partitionBy("date").mode(
                "overwrite"
            ).parquet(str(staging / "out"))
            count = 0
            staged = {}
            for day_dir in sorted((staging / "out").glob("date=*")):
                parts = sorted(day_dir.glob("part-*.parquet"))
                if len(parts) != 1:
                    raise RuntimeError(f"{day_dir}: expected one file per day, got {len(parts)}")
                count += _rows(parts[0])
                staged[day_dir.name] = parts[0]
            publish_partitions(target, staged)  # renamed into place, checksums recorded
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("feature table built", extra={"table": name, "rows": count, "engine": "spark"})
        return count

    def _spark_scope(
        self,
        name: str,
        lookback: Lookback | None,
        window_start: datetime,
        files: dict[str, list[Path]],
        through: datetime,
    ) -> None:
        """Temporary views for the raw tables and ``previous_keys``, as
        :meth:`FeatureBuilder._scope` defines them for DuckDB: day tables without rows a
        dead ingest left after the raw watermark (``through``) in the open day's file."""
        from pyspark.sql import functions as F

        spark = self.spark
        since, previous = self.read_scope(name, lookback, window_start)
        for table, paths in files.items():
            recent = paths if since is None else [p for p in paths if _holds_days_from(p, since)]
            frame = spark.read.parquet(*[str(p) for p in recent or paths[-1:]])
            if not recent:
                frame = frame.limit(0)
            elif partition_day(recent[-1]) is not None:
                frame = frame.where(F.col(KNOWABLE_AT) <= F.lit(through))
            frame.createOrReplaceTempView(table)
        keys = lookback.keys if lookback else ()
        if not keys:
            spark.catalog.dropTempView("previous_keys")
            return
        if previous is not None:
            spark.read.parquet(str(previous)).select(*keys).distinct().createOrReplaceTempView(
                "previous_keys"
            )
        else:  # a first build reads all of history: no entity can be missed
            spark.sql(
                "SELECT " + ", ".join(f"CAST(NULL AS STRING) AS {k}" for k in keys) + " LIMIT 0"
            ).createOrReplaceTempView("previous_keys")


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)
