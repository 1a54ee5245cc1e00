"""Unit tests for configuration and data contracts."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from feature_repo.settings import Settings
from feature_repo.validation import BatchRejected, Column, TableContract, validate_frame


def test_redis_url_becomes_a_feast_connection_string() -> None:
    settings = Settings(redis_url="redis://:s3cret@127.0.0.1:6390/2")
    assert settings.online_store_kind == "redis"
    assert settings.feast_redis_connection_string() == "127.0.0.1:6390,db=2,password=s3cret"


def test_sqlite_is_the_default_online_store() -> None:
    assert Settings().online_store_kind == "sqlite"


def test_a_malformed_redis_url_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="REDIS_URL"):
        Settings(redis_url="localhost:6379")


def test_repo_config_follows_the_environment(tmp_path) -> None:
    from feature_repo.store import repo_config_dict

    sqlite = repo_config_dict(Settings(data_dir=tmp_path))
    assert sqlite["online_store"] == {
        "type": "sqlite",
        "path": str(tmp_path / "feast/online_store.db"),
    }
    assert sqlite["offline_store"]["type"] == "duckdb"
    redis = repo_config_dict(Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0"))
    assert redis["online_store"]["type"] == "redis"
    assert redis["online_store"]["connection_string"].startswith("127.0.0.1:6379,db=0,")


CONTRACT = TableContract(
    name="t",
    columns=(Column("id", "string", nullable=False), Column("x", "float", min=0, max=10)),
    unique_key=("id",),
)


@pytest.mark.parametrize(
    ("frame", "column", "problem"),
    [
        (pd.DataFrame({"id": ["a"]}), "x", "missing column"),
        (pd.DataFrame({"id": ["a"], "x": [1.0], "y": [1]}), "y", "unexpected column"),
        (pd.DataFrame({"id": [None], "x": [1.0]}), "id", "null values"),
        (pd.DataFrame({"id": ["a"], "x": [11.0]}), "x", "outside [0, 10]"),
        (pd.DataFrame({"id": ["a"], "x": ["1"]}), "x", "expected float"),
        (pd.DataFrame({"id": ["a", "a"], "x": [1.0, 2.0]}), "id", "share a key"),
    ],
)
def test_contract_violations_name_the_column(frame, column, problem) -> None:
    with pytest.raises(BatchRejected) as raised:
        validate_frame(frame, CONTRACT, "some/file.parquet")
    assert raised.value.column == column
    assert problem in str(raised.value)
    assert "some/file.parquet" in str(raised.value)


def test_a_valid_frame_passes() -> None:
    validate_frame(pd.DataFrame({"id": ["a", "b"], "x": [0.0, None]}), CONTRACT, "f")


def test_a_redis_cluster_lists_its_nodes_and_no_database(monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://10.0.0.1:7000/0")
    monkeypatch.setenv("FEASTLINE_REDIS_TYPE", "redis_cluster")
    monkeypatch.setenv("FEASTLINE_REDIS_STARTUP_NODES", "10.0.0.2:7000, 10.0.0.3:7000")
    settings = Settings.from_env()
    assert settings.online_store_kind == "redis cluster"
    assert settings.feast_redis_connection_string() == ("10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"redis_type": "redis_cluster"}, "needs REDIS_URL"),
        ({"redis_type": "redis_cluster", "redis_url": "redis://h:7000/3"}, "only database 0"),
        ({"redis_url": "redis://h:6379/0", "redis_startup_nodes": ("h2:1",)}, "REDIS_TYPE"),
        (
            {
                "redis_type": "redis_cluster",
                "redis_url": "redis://h:7000",
                "redis_startup_nodes": ("h2",),
            },
            "host:port",
        ),
        ({"redis_type": "sentinel"}, "redis_type"),
    ],
)
def test_bad_redis_cluster_settings_are_refused_by_name(values, message) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**values)


def test_the_spark_engine_switches_feasts_offline_store_and_engine(monkeypatch, tmp_path) -> None:
    from feature_repo.store import repo_config_dict

    monkeypatch.setenv("FEASTLINE_ENGINE", "spark")
    monkeypatch.setenv("SPARK_MASTER", "spark://10.0.0.5:7077")
    monkeypatch.setenv("FEASTLINE_SPARK_EXECUTOR_MEMORY", "2g")
    settings = Settings.from_env(data_dir=tmp_path)
    config = repo_config_dict(settings)
    assert config["offline_store"]["type"] == "spark"
    assert config["batch_engine"]["type"] == "spark.engine"
    for conf in (config["offline_store"]["spark_conf"], config["batch_engine"]["spark_conf"]):
        assert conf["spark.master"] == "spark://10.0.0.5:7077"
        assert conf["spark.executor.memory"] == "2g"
        assert conf["spark.driver.memory"] == "1g"
        assert conf["spark.sql.session.timeZone"] == "UTC"
    assert repo_config_dict(Settings(data_dir=tmp_path))["offline_store"]["type"] == "duckdb"


def test_a_bad_engine_or_memory_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="engine"):
        Settings(engine="dask")
    with pytest.raises(ValidationError, match="spark_executor_memory"):
        Settings(spark_executor_memory="lots")
