"""FEASTLINE_ENGINE=spark on a real standalone Spark cluster (master + worker on loopback):
the feature tables built from the same SQL equal DuckDB's, value for value, for a
first build and an incremental one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from feature_repo.settings import Settings
from tests.integration.spark_cluster import LocalSparkCluster

FIRST_BUILD = date(2013, 1, 5)
THROUGH = date(2013, 1, 9)  # a short window keeps CI lean; the lookbacks still bite


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSparkCluster]:
    cluster = LocalSparkCluster(tmp_path_factory.mktemp("spark"))
    try:
        cluster.start()
        yield cluster
    finally:
        from pyspark.sql import SparkSession

        if (session := SparkSession.getActiveSession()) is not None:
            session.stop()
        cluster.stop()


def _table(data_dir: Path, name: str) -> pd.DataFrame:
    files = f"{data_dir}/features/{name}/date=*/part-0.parquet"
    frame = duckdb.sql(f"SELECT * FROM read_parquet('{files}', hive_partitioning = false)").df()
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


@pytest.mark.integration
def test_spark_builds_the_same_feature_tables_as_duckdb(spark_cluster, tmp_path: Path) -> None:
    from feature_repo.pipeline import ingest
    from feature_repo.spark_build import SparkFeatureBuilder

    duck = Settings(data_dir=tmp_path / "duckdb")
    ingest(duck, THROUGH)  # DuckDB, one full build

    spark = Settings(
        data_dir=tmp_path / "spark",
        engine="spark",
        spark_master=spark_cluster.master_url,
        spark_driver_memory="1g",
        spark_executor_memory="1g",
    )
    first = ingest(spark, FIRST_BUILD)  # Spark: a first build ...
    assert first.features is not None
    second = ingest(spark, THROUGH)  # ... then an incremental one (previous_keys, lookbacks)
    assert second.features is not None and second.features.through == THROUGH

    from feature_repo.pipeline import feature_builder

    builder = feature_builder(spark)
    assert isinstance(builder, SparkFeatureBuilder)
    assert builder.spark.sparkContext.master == spark_cluster.master_url

    names = sorted(p.name for p in (duck.features_dir).iterdir() if p.is_dir())
    assert len(names) == 6
    for name in names:
        expected, got = _table(duck.data_dir, name), _table(spark.data_dir, name)
        assert len(expected) > 0
        assert list(got.columns) == list(expected.columns), name
        assert list(got.dtypes) == list(expected.dtypes), name
        pd.testing.assert_frame_equal(got, expected, check_exact=True, obj=name)
        # The same day partitions, one file each.
        days = sorted(p.name for p in (duck.features_dir / name).glob("date=*"))
        assert sorted(p.name for p in (spark.features_dir / name).glob("date=*")) == days
    assert not list(spark.features_dir.glob(".*.spark.*")), "staging folders left behind"
