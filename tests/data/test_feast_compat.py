"""Upgrade alarms for feature_repo/feast_compat.py: Feast's private API we use, the Feast
behaviour its patches work around, and what the engine plugin (feature_repo/feast_engine.py)
builds on: the local engine's classes and hooks it overrides or calls, and the rows Feast's
own engine writes. A failure names what Feast changed."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feast
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, RequestSource
from feast.infra.common.materialization_job import (
    MaterializationJobStatus,
    MaterializationTask,
)
from feast.infra.compute_engines.base import ComputeEngine
from feast.infra.compute_engines.feature_builder import FeatureBuilder
from feast.infra.compute_engines.local import nodes
from feast.infra.compute_engines.local.compute import LocalComputeEngine
from feast.infra.compute_engines.local.feature_builder import LocalFeatureBuilder
from feast.infra.compute_engines.local.job import LocalMaterializationJob
from feast.infra.offline_stores import duckdb as feast_duckdb
from feast.infra.offline_stores import ibis as feast_ibis
from feast.on_demand_feature_view import OnDemandFeatureView, on_demand_feature_view
from feast.types import Float64, Int64
from feast.value_type import ValueType

from feature_repo import feast_compat, feast_engine

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
        assert hasattr(ops, name), (
            f"ibis {ibis.__version__} changed: no ibis.expr.operations.{name}"
        )
    assert callable(getattr(ibis, "get_backend", None)), f"ibis {ibis.__version__}: no get_backend"


# What feast_compat.LocalEngineHooks and LocalBuilderHooks override, and what
# feature_repo/feast_engine.py overrides or calls positionally: (owner, attribute, its
# parameters in order).
ENGINE_ASSUMPTIONS: list[tuple[Any, str, list[str]]] = [
    (ComputeEngine, "materialize", ["self", "registry", "tasks", "lineage_parent", "kwargs"]),
    (ComputeEngine, "get_execution_context", ["self", "registry", "task"]),
    (LocalComputeEngine, "__init__", ["self", "backend", "kwargs"]),
    (LocalComputeEngine, "_materialize_one", ["self", "registry", "task", "kwargs"]),
    (LocalComputeEngine, "_get_backend", ["self", "context"]),
    (FeatureBuilder, "_should_dedupe", ["self", "view"]),
    (FeatureBuilder, "get_column_info", ["self", "view"]),
    (LocalFeatureBuilder, "__init__", ["self", "registry", "task", "backend"]),
    (LocalFeatureBuilder, "build_source_node", ["self", "view"]),
    (LocalFeatureBuilder, "build_filter_node", ["self", "view", "input_node"]),
    (LocalFeatureBuilder, "build_output_nodes", ["self", "view", "input_node"]),
    (
        nodes.LocalSourceReadNode,
        "__init__",
        ["self", "name", "source", "column_info", "start_time", "end_time"],
    ),
    (nodes.LocalOutputNode, "__init__", ["self", "name", "feature_view", "inputs"]),
    (nodes.LocalOutputNode, "execute", ["self", "context"]),
    (nodes.LocalOutputNode, "get_single_table", ["self", "context"]),
]
# What the engine calls by keyword: (owner, attribute, the keywords it passes).
KEYWORD_ASSUMPTIONS: list[tuple[Any, str, set[str]]] = [
    (
        nodes,
        "create_offline_store_retrieval_job",
        {"data_source", "context", "start_time", "end_time", "column_info"},
    ),
    (LocalMaterializationJob, "__init__", {"job_id", "status", "error"}),
    # Handed to the ibis queries below as the data_source_writer.
    (feast_duckdb, "_write_data_source", {"table", "data_source", "repo_path"}),
    *(
        (
            feast_ibis,
            pull,
            {
                "config",
                "data_source",
                "join_key_columns",
                "feature_name_columns",
                "timestamp_field",
                "created_timestamp_column",
                "start_date",
                "end_date",
                "data_source_reader",
                "data_source_writer",
                "staging_location",
                "staging_location_endpoint_override",
            },
        )
        for pull in ("pull_latest_from_table_or_query_ibis", "pull_all_from_table_or_query_ibis")
    ),
]


def _label(owner: Any, name: str) -> str:
    return f"{getattr(owner, '__qualname__', owner.__name__)}.{name}"


@pytest.mark.parametrize(
    ("owner", "name", "expected"),
    [*ENGINE_ASSUMPTIONS, *KEYWORD_ASSUMPTIONS],
    ids=[_label(owner, name) for owner, name, _ in [*ENGINE_ASSUMPTIONS, *KEYWORD_ASSUMPTIONS]],
)
def test_feast_keeps_what_the_engine_plugin_overrides_and_calls(
    owner: Any, name: str, expected: list[str] | set[str]
) -> None:
    """A list: the parameters, in order (overridden, or called positionally); a set: the
    keywords the engine passes."""
    function = getattr(owner, name, None)
    assert callable(function), UPGRADE + f"{_label(owner, name)}: gone (the engine plugin uses it)"
    signature = inspect.signature(function)
    found = list(signature.parameters)
    kept = found == expected if isinstance(expected, list) else expected <= set(found)
    assert kept, UPGRADE + f"{_label(owner, name)}{signature}: the engine plugin expects {expected}"


def _task(store: FeatureStore, **fields: Any) -> MaterializationTask:
    return MaterializationTask(
        project=store.project,
        feature_view=store.get_feature_view("speeds"),
        start_time=datetime(2013, 6, 1, tzinfo=UTC),
        end_time=datetime(2013, 6, 2, tzinfo=UTC),
        **fields,
    )


class HookedEngine(feast_compat.LocalEngineHooks, LocalComputeEngine):
    pass


class HookedBuilder(feast_compat.LocalBuilderHooks, LocalFeatureBuilder):
    pass


def _engine(store: FeatureStore, kind: type[HookedEngine]) -> Any:
    feasts = feast_compat.provider(store).batch_engine
    return kind(
        repo_config=store.config,
        offline_store=feasts.offline_store,
        online_store=feasts.online_store,
    )


def test_feast_runs_the_engine_hook_per_task(store: FeatureStore) -> None:
    class Recording(HookedEngine):
        def materialize_one(self, registry: Any, task: Any, **kwargs: Any) -> Any:
            ran.append(task)
            return task.feature_view.name

    ran: list[MaterializationTask] = []
    engine = _engine(store, Recording)
    tasks = [_task(store), _task(store, only_latest=False)]
    assert engine.materialize(store.registry, tasks) == ["speeds", "speeds"]
    assert ran == tasks, UPGRADE + "ComputeEngine.materialize: it no longer runs _materialize_one"
    context = engine.get_execution_context(store.registry, tasks[0])
    backend = type(engine.backend(context)).__name__
    assert backend == "PandasBackend", UPGRADE + f"LocalComputeEngine._get_backend: {backend}"


@pytest.mark.parametrize("dedupe", [True, False])
def test_feast_asks_the_builder_hook_whether_to_dedupe(store: FeatureStore, dedupe: bool) -> None:
    class Deciding(HookedBuilder):
        def should_dedupe(self, view: Any) -> bool:
            return dedupe

    task = _task(store)
    engine = _engine(store, HookedEngine)
    backend = engine.backend(engine.get_execution_context(store.registry, task))
    plan = Deciding(store.registry, task, backend=backend).build()
    names = [node.name for node in plan.nodes]
    assert ("dedup" in names) == dedupe, (
        UPGRADE + f"FeatureBuilder._build: the plan {names} ignores _should_dedupe={dedupe}"
    )
    assert names[0] == "source" and names[-1] == "output", UPGRADE + f"the DAG's nodes: {names}"
    default = HookedBuilder(store.registry, task, backend=backend)
    assert default.should_dedupe(task.feature_view) is True, (
        UPGRADE + "FeatureBuilder._should_dedupe"
    )


def test_the_adapter_imports_feast_only_when_used() -> None:
    """feature_repo.store imports the adapter at start-up; Feast takes seconds to import."""
    probe = "import sys, feature_repo.store; print('feast' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "False", "importing feature_repo.store (and feast_compat) imported Feast"


def test_a_config_copy_takes_another_online_store(store: FeatureStore) -> None:
    config = store.config
    original = config.online_store
    replaced = original.model_copy(update={"path": "elsewhere.db"})
    patched = feast_compat.with_online_store(config, replaced)
    assert patched.online_store is replaced, UPGRADE + "RepoConfig.online_store (its _online_store)"
    assert config.online_store is original
    assert patched.registry == config.registry


WINDOW_START = datetime(2013, 6, 1, tzinfo=UTC)


def _hours(hours: int) -> datetime:
    return WINDOW_START + timedelta(hours=hours)


def _speeds_written_by(
    tmp_path: Path, name: str, batch_engine: dict[str, Any], files: bool, pull_latest: bool
) -> tuple[dict[str, Any], Any]:
    """What an engine writes for one window of a view, read back from its online store."""
    path = tmp_path / "speeds.parquet"
    if not path.exists():
        pq.write_table(
            pa.table(
                {
                    "tailnum_id": pa.array([1, 1, 2, 2, 3, 4], pa.int64()),
                    "speed": pa.array([400.0, 410.0, None, 380.0, 390.0, 500.0]),
                    # 3 and 4 fall outside the window [0 h, 24 h].
                    "ts": pa.array(
                        [_hours(h) for h in (1, 5, 2, 7, 30, -2)], pa.timestamp("us", tz="UTC")
                    ),
                }
            ),
            path,
        )
    view = FeatureView(
        name="speeds",
        entities=[aircraft],
        schema=[Field(name="tailnum_id", dtype=Int64), Field(name="speed", dtype=Float64)],
        source=FileSource(name="speeds_source", path=str(path), timestamp_field="ts"),
    )
    config = RepoConfig(
        project="compat",
        provider="local",
        registry=str(tmp_path / f"{name}-registry.db"),
        online_store={"type": "sqlite", "path": str(tmp_path / f"{name}-online.db")},
        offline_store={"type": "duckdb"},
        batch_engine=batch_engine,
        materialization={"pull_latest_features": pull_latest},
        entity_key_serialization_version=3,
        repo_path=tmp_path,
    )
    store = FeatureStore(config=config)
    store.apply([aircraft, view])
    window = {
        "project": store.project,
        "feature_view": store.get_feature_view("speeds"),
        "start_time": WINDOW_START,
        "end_time": _hours(24),
    }
    task = (
        feast_engine.WindowTask(**window, source_files=[str(path)])
        if files
        else MaterializationTask(**window)
    )
    [job] = feast_compat.provider(store).batch_engine.materialize(store.registry, [task])
    assert job.status() == MaterializationJobStatus.SUCCEEDED, job.error()
    online = store.get_online_features(
        features=["speeds:speed"], entity_rows=[{"tailnum_id": key} for key in (1, 2, 3, 4)]
    ).to_dict()
    return online, job


@pytest.mark.parametrize("pull_latest", [True, False])
def test_the_window_engine_writes_what_feasts_local_engine_writes(
    tmp_path: Path, pull_latest: bool
) -> None:
    """The plugin replaces Feast's read, filter, dedup and output nodes (LocalOutputNode.execute
    re-implemented over online_rows); the online store must hold what Feast's engine writes."""
    feasts, _ = _speeds_written_by(tmp_path, "local", {"type": "local"}, False, pull_latest)
    assert feasts == {"tailnum_id": [1, 2, 3, 4], "speed": [410.0, 380.0, None, None]}, (
        UPGRADE + f"what its local engine materializes: {feasts}"
    )
    for window_read in ("feast", "duckdb"):
        for files in (False, True):
            engine = {"type": feast_engine.ENGINE_TYPE, "window_read": window_read}
            name = f"window-{window_read}-{files}"
            written, job = _speeds_written_by(tmp_path, name, engine, files, pull_latest)
            assert written == feasts, (
                UPGRADE + f"its local engine's nodes: WindowEngine ({name}) wrote {written}, "
                f"Feast's engine {feasts}"
            )
            assert (job.rows, job.newest_event) == (2, _hours(7))
