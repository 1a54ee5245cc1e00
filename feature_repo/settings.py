"""Typed configuration for every pipeline, in one place.

Values come from environment variables so that the same code runs on a laptop
(embedded SQLite online store, ``./data``) and in production (Redis, another
data directory) without edits. Nothing here imports Feast, so reading the
configuration stays cheap.
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FEATURE_REPO_DIR = Path(__file__).resolve().parent

ENV_PREFIX = "FEASTLINE_"


class Settings(BaseModel):
    """Where data lives, which online store to use, and how predictions are timed."""

    model_config = ConfigDict(frozen=True)

    data_dir: Path = Field(default=PROJECT_ROOT / "data")
    redis_url: str | None = Field(
        default=None,
        description="redis://host:port/db. When unset, Feast's SQLite online store is used.",
    )
    redis_type: Literal["redis", "redis_cluster"] = Field(
        default="redis",
        description="Feast's redis_type: one server (redis) or a Redis Cluster (redis_cluster), "
        "whose nodes are found from REDIS_URL's node and FEASTLINE_REDIS_STARTUP_NODES.",
    )
    redis_startup_nodes: tuple[str, ...] = Field(
        default=(),
        description="More cluster nodes (host:port) to discover the cluster from, so that a "
        "client starting while REDIS_URL's node is down still finds the others.",
    )
    redis_key_ttl_seconds: int = Field(
        default=14 * 24 * 3600,
        description="Redis evicts an entity's features this long after its last write.",
    )
    prediction_lead: timedelta = Field(
        default=timedelta(hours=2),
        description="How long before scheduled departure a prediction is made.",
    )
    schedule_period: timedelta = Field(
        default=timedelta(minutes=15),
        description="How often the step runs when no scheduler has recorded its period; "
        "freshness objectives allow one period of delay.",
    )
    engine: Literal["duckdb", "spark"] = Field(
        default="duckdb",
        description="Batch engine for the feature build: DuckDB in-process (default) or Spark.",
    )
    spark_master: str = Field(
        default="local[2]",
        description="SPARK_MASTER: spark://host:7077 for a standalone cluster, or local[N].",
    )
    spark_driver_memory: str = Field(default="1g", pattern=r"^\d+[kmgt]$")
    spark_executor_memory: str = Field(default="1g", pattern=r"^\d+[kmgt]$")
    dataset_module: str = Field(
        default="feature_repo.flights",
        description="The package that adapts one dataset to the generic pipeline.",
    )

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
            raise ValueError(f"REDIS_URL must look like redis://host:port/db, got {value!r}")
        return value

    @field_validator("redis_startup_nodes")
    @classmethod
    def _check_startup_nodes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for node in value:
            host, _, port = node.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(
                    f"FEASTLINE_REDIS_STARTUP_NODES takes host:port[,host:port...], got {node!r}"
                )
        return value

    @model_validator(mode="after")
    def _check_cluster(self) -> Settings:
        if self.redis_type == "redis_cluster":
            if not self.redis_url:
                raise ValueError("FEASTLINE_REDIS_TYPE=redis_cluster needs REDIS_URL (any node)")
            db = (urlparse(self.redis_url).path or "/0").lstrip("/") or "0"
            if db != "0":
                raise ValueError(f"a Redis Cluster has only database 0; REDIS_URL names db {db}")
        elif self.redis_startup_nodes:
            raise ValueError(
                "FEASTLINE_REDIS_STARTUP_NODES needs FEASTLINE_REDIS_TYPE=redis_cluster"
            )
        return self

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        values: dict[str, object] = {}
        if data_dir := os.environ.get(f"{ENV_PREFIX}DATA_DIR"):
            values["data_dir"] = Path(data_dir)
        if redis_url := os.environ.get("REDIS_URL"):
            values["redis_url"] = redis_url
        if redis_type := os.environ.get(f"{ENV_PREFIX}REDIS_TYPE"):
            values["redis_type"] = redis_type
        if nodes := os.environ.get(f"{ENV_PREFIX}REDIS_STARTUP_NODES"):
            values["redis_startup_nodes"] = tuple(n.strip() for n in nodes.split(",") if n.strip())
        if engine := os.environ.get(f"{ENV_PREFIX}ENGINE"):
            values["engine"] = engine
        if master := os.environ.get("SPARK_MASTER"):
            values["spark_master"] = master
        if memory := os.environ.get(f"{ENV_PREFIX}SPARK_DRIVER_MEMORY"):
            values["spark_driver_memory"] = memory
        if memory := os.environ.get(f"{ENV_PREFIX}SPARK_EXECUTOR_MEMORY"):
            values["spark_executor_memory"] = memory
        if dataset := os.environ.get(f"{ENV_PREFIX}DATASET"):
            values["dataset_module"] = dataset
        if lead := os.environ.get(f"{ENV_PREFIX}PREDICTION_LEAD_MINUTES"):
            values["prediction_lead"] = timedelta(minutes=int(lead))
        values.update(overrides)
        return cls(**values)

    # -- derived locations -------------------------------------------------
    @cached_property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @cached_property
    def features_dir(self) -> Path:
        return self.data_dir / "features"

    @cached_property
    def feast_dir(self) -> Path:
        return self.data_dir / "feast"

    @cached_property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @cached_property
    def bentoml_home(self) -> Path:
        """The model registry (BentoML model store). Pinned inside the data dir so that
        ``bentoml.models.get("x:latest")`` never falls back to a remote lookup."""
        return self.data_dir / "bentoml"

    @cached_property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @cached_property
    def monitoring_dir(self) -> Path:
        """whylogs profiles, prediction logs, drift results and alerts."""
        return self.data_dir / "monitoring"

    @cached_property
    def state_dir(self) -> Path:
        """Small JSON state files: materialization watermarks, scheduler status."""
        return self.data_dir / "state"

    @property
    def online_store_kind(self) -> str:
        if not self.redis_url:
            return "sqlite"
        return "redis cluster" if self.redis_type == "redis_cluster" else "redis"

    def redis_nodes(self) -> list[tuple[str, int]]:
        """REDIS_URL's node, then the extra startup nodes (a cluster's seeds)."""
        if not self.redis_url:
            raise ValueError("no REDIS_URL configured")
        parsed = urlparse(self.redis_url)
        nodes = [(str(parsed.hostname), parsed.port or 6379)]
        for node in self.redis_startup_nodes:
            host, _, port = node.rpartition(":")
            if (host, int(port)) not in nodes:
                nodes.append((host, int(port)))
        return nodes

    def feast_redis_connection_string(self) -> str:
        """Feast wants ``host:port[,host:port...],db=N[,password=...]`` rather than a URL.

        A cluster lists its startup nodes and no database (a cluster has only db 0,
        and its nodes refuse SELECT)."""
        parsed = urlparse(self.redis_url or "")
        if self.redis_type == "redis_cluster":
            parts = [f"{host}:{port}" for host, port in self.redis_nodes()]
        else:
            parts = [f"{host}:{port}" for host, port in self.redis_nodes()[:1]]
            db = (parsed.path or "/0").lstrip("/") or "0"
            parts.append(f"db={db}")
        if parsed.password:
            parts.append(f"password={parsed.password}")
        if parsed.scheme == "rediss":
            parts.append("ssl=true")
        return ",".join(parts)
