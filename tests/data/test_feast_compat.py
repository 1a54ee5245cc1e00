"""Upgrade alarms for feature_repo/feast_compat.py: Feast's private API we use, and the
Feast behaviour its patches work around. A failure names what Feast changed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feast
import pyarrow as pa
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, RequestSource
from feast.on_demand_feature_view import OnDemandFeatureView, on_demand_feature_view
from feast.types import Float64, Int64
from feast.value_type import ValueType

from feature_repo import feast_compat

UPGRADE = f"Feast {feast.__version__} changed "

request = RequestSource(name="req", schema=[Field(name="x", dtype=Int64)])


@on_demand_feature_view(
    sources=[request], schema=[Field(name="doubled", dtype=Int64)], mode="python"
)
def twice(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"doubled": [value * 2 for value in inputs["x"]]}


aircraft = Entity(name="aircraft", join_keys=["tailnum_id"], value_type=ValueType.INT64)
speeds = FeatureView(
    name="speeds",
    entities=[aircraft],
    schema=[Field(name="tailnum_id", dtype=Int64), Field(name="speed", dtype=Float64)],
    source=FileSource(name="speeds_source", path="speeds.parquet", timestamp_field="ts"),
)


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    config = RepoConfig(
        project="compat",
        provider="local",
        registry=str(tmp_path / "registry.db"),
        online_store={"type": "sqlite", "path": str(tmp_path / "online.db")},
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
        repo_path=tmp_path,
    )
    feature_store = FeatureStore(config=config)
    feature_store.apply([request, twice, aircraft, speeds])
    return feature_store


def _online(store: FeatureStore, full_feature_names: bool) -> dict[str, Any]:
    return store.get_online_features(
        features=["twice:doubled"], entity_rows=[{"x": 3}], full_feature_names=full_feature_names
    ).to_dict()


def test_feast_still_drops_python_mode_on_demand_features_with_full_names(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    unpatched: Callable[..., Any] = feast_compat.unpatched("OnDemandFeatureView.transform_dict")
    monkeypatch.setattr(OnDemandFeatureView, "transform_dict", unpatched)
    assert _online(store, full_feature_names=False) == {"doubled": [6]}
    assert _online(store, full_feature_names=True) == {}, (
        UPGRADE + "on-demand features: Python-mode views now keep their features under "
        "full names. Remove feast_compat._emit_projected_names_from_python_odfvs."
    )


def test_the_patch_keeps_them_in_both_naming_modes(store: FeatureStore) -> None:
    feast_compat.apply_patches()
    assert _online(store, full_feature_names=True) == {"twice__doubled": [6]}
    assert _online(store, full_feature_names=False) == {"doubled": [6]}


def test_the_provider_has_what_we_call(store: FeatureStore) -> None:
    provider = feast_compat.provider(store)
    for name in ("batch_engine", "online_store", "update_infra", "get_historical_features"):
        assert hasattr(provider, name), UPGRADE + f"FeatureStore._get_provider(): no {name}"
    assert hasattr(provider.batch_engine, "materialize"), UPGRADE + "the batch engine's API"


def test_arrow_rows_convert_to_online_protos(store: FeatureStore) -> None:
    written = datetime(2013, 6, 1, 12, tzinfo=UTC)
    table = pa.table(
        {
            "tailnum_id": pa.array([7, 8], pa.int64()),
            "speed": pa.array([410.0, None], pa.float64()),
            "ts": pa.array([written, written], pa.timestamp("us", tz="UTC")),
        }
    )
    view = store.get_feature_view("speeds")
    rows = feast_compat.convert_arrow_to_proto(table, view, {"tailnum_id": ValueType.INT64})
    assert len(rows) == 2, UPGRADE + "_convert_arrow_to_proto's result"
    key, values, event_time, _created = rows[0]
    assert list(key.join_keys) == ["tailnum_id"] and key.entity_values[0].int64_val == 7
    assert values["speed"].double_val == 410.0
    # Naive UTC, as Feast's online stores expect.
    assert event_time == written.replace(tzinfo=None), UPGRADE + "_convert_arrow_to_proto's rows"


def test_declared_types_map_to_arrow_by_full_feature_name() -> None:
    # The join key is an entity column, not a feature: its type comes from the entity rows.
    types = feast_compat.declared_arrow_types([speeds])
    assert types == {"speeds__speed": pa.float64()}, UPGRADE + "feast_value_type_to_pa"


def test_ibis_still_has_what_the_retrieval_clean_up_reads() -> None:
    import ibis
    import ibis.expr.operations as ops

    for name in ("InMemoryTable", "DatabaseTable"):
        assert hasattr(ops, name), f"ibis {ibis.__version__} changed: no ibis.expr.operations.{name}"
    assert callable(getattr(ibis, "get_backend", None)), f"ibis {ibis.__version__}: no get_backend"
