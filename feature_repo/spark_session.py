"""The one way the project opens Spark (``FEASTLINE_ENGINE=spark``).

``SPARK_MASTER`` names the cluster (``spark://host:7077``, standalone) or
``local[N]``. The session works in UTC (as DuckDB does here), writes Parquet
timestamps as microseconds (Spark's INT96 default is unreadable as a time zone
aware type elsewhere), and caps driver and executor memory, because the machines
this runs on are shared. pyspark is an optional extra: ``pip install -e .[spark]``.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from feature_repo.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_conf(settings: Settings) -> dict[str, str]:
    """The session's settings; Feast's Spark offline store and compute engine get them too.

    Executors run Python with Feast in it (the compute engine's online writes), which
    pyspark takes from PYSPARK_PYTHON when the context starts, else ``python3`` on the
    PATH: this interpreter is the default, set here because Feast starts its own
    sessions. On a real cluster, PYSPARK_PYTHON names the workers' environment."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return {
        "spark.master": settings.spark_master,
        "spark.app.name": "feastline",
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.executor.memory": settings.spark_executor_memory,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        # Feature tables are small per day; the default 200 shuffle partitions would be
        # 200 tasks of nothing each.
        "spark.sql.shuffle.partitions": "8",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }


def open_spark(settings: Settings) -> SparkSession:
    """A SparkSession on ``settings.spark_master`` (reused if this process has one)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise RuntimeError(
            "FEASTLINE_ENGINE=spark needs pyspark: `make setup-spark` "
            "(pip install -e '.[spark]', and Java 17)"
        ) from None
    builder = SparkSession.builder
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
