"""FEASTLINE_ENGINE=spark on a real standalone Spark cluster (master + worker on loopback),
against DuckDB on the same raw data:

- the feature tables built from the same SQL are equal, value for value, after a
  first build and an incremental one;
- the point-in-time training set from Feast's Spark offline store has the same rows
  and values (to 1e-9) as the one from Feast's DuckDB store, built in several chunks,
  with the same column types and so the same fingerprint;
- the online store after a backfill through Feast's Spark compute engine holds
  exactly what a backfill through the DuckDB engine wrote.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import redis

from feature_repo.settings import Settings
from tests.integration.conftest import MAIN_REDIS
from tests.integration.spark_cluster import LocalSparkCluster

FIRST_BUILD = date(2013, 1, 5)
THROUGH = date(2013, 1, 9)  # a short window keeps CI lean; the lookbacks still bite


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSparkCluster]:
    previous = os.environ.get("SPARK_LOCAL_IP")
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # the driver, too, on loopback
    cluster = LocalSparkCluster(tmp_path_factory.mktemp("spark"))
    try:
        cluster.start()
        yield cluster
    finally:
        from pyspark.sql import SparkSession

        if (session := SparkSession.getActiveSession()) is not None:
            session.stop()
        cluster.stop()
        if previous is None:
            os.environ.pop("SPARK_LOCAL_IP", None)
        else:
            os.environ["SPARK_LOCAL_IP"] = previous


@dataclass(frozen=True)
class Engines:
    duckdb: Settings
    spark: Settings


@pytest.fixture(scope="module")
def engines(spark_cluster: LocalSparkCluster, tmp_path_factory) -> Engines:
    """The same raw data, with feature tables and a Feast registry per engine; Spark's
    built first in one build, then incrementally."""
    from feature_repo.pipeline import ingest
    from feature_repo.store import apply_definitions, open_store

    root = tmp_path_factory.mktemp("engines")
    duck = Settings(data_dir=root / "duckdb")
    ingest(duck, THROUGH)  # DuckDB, one full build
    spark = Settings(
        data_dir=root / "spark",
        engine="spark",
        spark_master=spark_cluster.master_url,
        spark_driver_memory="1g",
        spark_executor_memory="1g",
    )
    first = ingest(spark, FIRST_BUILD)
    assert first.features is not None
    second = ingest(spark, THROUGH)
    assert second.features is not None and second.features.through.date() == THROUGH
    for settings in (duck, spark):
        apply_definitions(open_store(settings), settings)
    return Engines(duck, spark)


def _table(data_dir: Path, name: str) -> pd.DataFrame:
    files = f"{data_dir}/features/{name}/date=*/part-0.parquet"
    frame = duckdb.sql(f"SELECT * FROM read_parquet('{files}', hive_partitioning = false)").df()
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


@pytest.mark.integration
def test_spark_builds_the_same_feature_tables_as_duckdb(
    engines: Engines, spark_cluster: LocalSparkCluster
) -> None:
    from feature_repo.pipeline import feature_builder
    from feature_repo.spark_build import SparkFeatureBuilder

    builder = feature_builder(engines.spark)
    assert isinstance(builder, SparkFeatureBuilder)
    assert builder.spark.sparkContext.master == spark_cluster.master_url
    duck, spark = engines.duckdb, engines.spark
    names = sorted(p.name for p in duck.features_dir.iterdir() if p.is_dir())
    assert len(names) == 6
    for name in names:
        expected, got = _table(duck.data_dir, name), _table(spark.data_dir, name)
        assert len(expected) > 0
        assert list(got.columns) == list(expected.columns), name
        assert list(got.dtypes) == list(expected.dtypes), name
        pd.testing.assert_frame_equal(got, expected, check_exact=True, obj=name)
        days = sorted(p.name for p in (duck.features_dir / name).glob("date=*"))
        assert sorted(p.name for p in (spark.features_dir / name).glob("date=*")) == days
    assert not list(spark.features_dir.glob(".*.spark.*")), "staging folders left behind"


@pytest.mark.integration
def test_the_spark_offline_store_gives_the_same_training_set(
    engines: Engines, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feature_repo.store import open_store
    from training import dataset
    from training.dataset import build_training_set

    # One chunk per day, as a long window has many: Feast's Spark store returns an
    # integer feature as double in a chunk where it has a null, and the chunks (and the
    # set's fingerprint) must not depend on that.
    monkeypatch.setattr(dataset, "CHUNK_ROWS", 1_024)
    sets, fingerprints = {}, {}
    for name, settings in (("duckdb", engines.duckdb), ("spark", engines.spark)):
        store = open_store(settings)
        kind = type(store._get_provider().offline_store).__name__
        assert kind == ("SparkOfflineStore" if name == "spark" else "DuckDBOfflineStore")
        built = build_training_set(settings, date(2013, 1, 7), date(2013, 1, 8), store=store)
        sets[name] = built.frame.sort_values("flight_id").reset_index(drop=True)
        fingerprints[name] = built.manifest["fingerprint"]
    expected, got = sets["duckdb"], sets["spark"]
    assert len(expected) > 500
    assert list(got.columns) == list(expected.columns)
    assert dict(got.dtypes) == dict(expected.dtypes)
    assert fingerprints["spark"] == fingerprints["duckdb"]
    assert got["flight_id"].tolist() == expected["flight_id"].tolist()
    features = [c for c in expected.columns if "__" in c]
    assert len(features) > 20
    assert expected[features].notna().sum().sum() > len(expected) * 20  # not vacuous
    for column in expected.columns:
        want, have = expected[column], got[column]
        if pd.api.types.is_numeric_dtype(want) and not pd.api.types.is_bool_dtype(want):
            np.testing.assert_allclose(
                have.astype(float), want.astype(float), rtol=1e-9, atol=0, err_msg=column
            )
        else:
            assert have.astype(str).tolist() == want.astype(str).tolist(), column


def _online_contents(url: str) -> dict[bytes, dict[bytes, bytes]]:
    client = redis.Redis.from_url(url)
    return {key: client.hgetall(key) for key in client.scan_iter() if client.type(key) == b"hash"}


@pytest.mark.integration
def test_a_spark_backfill_writes_what_a_duckdb_backfill_writes(engines: Engines) -> None:
    from feature_repo.materialize import Materializer
    from feature_repo.store import open_store

    start, end = datetime(2013, 1, 4, tzinfo=UTC), datetime(2013, 1, 9, 12, tzinfo=UTC)
    contents, rows = {}, {}
    for name, settings, db in (("duckdb", engines.duckdb, 8), ("spark", engines.spark, 9)):
        url = MAIN_REDIS.format(db=db)
        redis.Redis.from_url(url).flushdb()
        on_redis = settings.model_copy(update={"redis_url": url})
        store = open_store(on_redis)
        engine = type(store._get_provider().batch_engine).__name__
        assert engine == ("SparkComputeEngine" if name == "spark" else "WindowEngine")
        materializer = Materializer(on_redis, store=store)
        materializer.state.reset()
        result = materializer.backfill(start, end)
        rows[name] = {view.view: view.rows for view in result.views}
        contents[name] = _online_contents(url)
        redis.Redis.from_url(url).flushdb()
    assert rows["spark"] == rows["duckdb"]
    assert len(contents["duckdb"]) > 1000
    assert contents["spark"] == contents["duckdb"]
