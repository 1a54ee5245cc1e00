"""Feast's private API: every use of it in the project is here.

- Accessors for what ``FeatureStore`` does not expose: its provider (batch engine,
  online store, infrastructure, offline retrieval for chosen views), the Redis
  client of the online store, and Feast's Arrow-to-proto conversion; and the
  clean-up of what a retrieval leaves in ibis's DuckDB connection (ibis internals).
- What the engine plugin (feature_repo/feast_engine.py) builds on: mixins giving
  the private hooks of Feast's local compute engine and DAG builder public
  names, and the private pieces it reuses (a ``RepoConfig`` with another online
  store config, the DuckDB source writer).
- Work-arounds for Feast 0.67 behaviour that would otherwise lose data silently.
  Each patch is idempotent, applied once by :func:`feature_repo.store.open_store`.

tests/data/test_feast_compat.py fails, naming the upstream change, when an upgrade
breaks an accessor or a hook, or when Feast fixes what a patch works around (then
remove it).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

# The mixins' bases are Feast's classes for the type checker only: importing Feast takes
# seconds, and feature_repo.store imports this module long before it needs Feast.
if TYPE_CHECKING:
    from feast.infra.compute_engines.local.compute import LocalComputeEngine as _EngineBase
    from feast.infra.compute_engines.local.feature_builder import (
        LocalFeatureBuilder as _BuilderBase,
    )
else:
    _EngineBase = _BuilderBase = object

_PATCHED = False
_UNPATCHED: dict[str, Callable[..., Any]] = {}


def provider(store: Any) -> Any:
    """``FeatureStore._get_provider()``: the provider behind a store."""
    return store._get_provider()


def redis_client(store: Any) -> Any:
    """The redis-py client of a store whose online store is Redis."""
    return provider(store).online_store._get_client(store.config.online_store)


def convert_arrow_to_proto(table: Any, feature_view: Any, join_keys: Any) -> Any:
    """``feast.utils._convert_arrow_to_proto``: Arrow rows to online-store protos."""
    from feast.utils import _convert_arrow_to_proto

    return _convert_arrow_to_proto(table, feature_view, join_keys)


def historical_features(store: Any, views: list[Any], refs: list[str], entity_df: Any) -> Any:
    """The provider's point-in-time retrieval for the given batch views, with full feature
    names and strict as-of on created timestamps: ``FeatureStore.get_historical_features``
    without its own choice of views and sources (training/dataset.py narrows them)."""
    return provider(store).get_historical_features(
        config=store.config,
        feature_views=views,
        feature_refs=refs,
        entity_df=entity_df,
        registry=store.registry,
        project=store.project,
        full_feature_names=True,
        filter_by_created_timestamp=True,
    )


class LocalEngineHooks(_EngineBase):
    """Mixed in before Feast's ``LocalComputeEngine``, it gives the engine's private hooks
    public names: :meth:`materialize_one` is ``_materialize_one`` (what Feast's
    ``materialize`` runs for each task), :meth:`backend` is ``_get_backend``."""

    def _materialize_one(self, registry: Any, task: Any, **kwargs: Any) -> Any:
        return self.materialize_one(registry, task, **kwargs)

    def materialize_one(self, registry: Any, task: Any, **kwargs: Any) -> Any:
        """One task's materialization job: Feast's, unless the engine overrides it."""
        return super()._materialize_one(registry, task, **kwargs)

    def backend(self, context: Any) -> Any:
        """The DataFrame backend of Feast's nodes: the configured one, else pandas."""
        return self._get_backend(context)


class LocalBuilderHooks(_BuilderBase):
    """Mixed in before Feast's ``LocalFeatureBuilder``, it gives the builder's private
    ``_should_dedupe`` (whether a dedup node follows the read and filter) a public name,
    :meth:`should_dedupe`."""

    def _should_dedupe(self, view: Any) -> bool:
        return self.should_dedupe(view)

    def should_dedupe(self, view: Any) -> bool:
        """Feast's choice unless the builder overrides it: a retrieval, or a task with
        ``only_latest``, dedupes."""
        return bool(super()._should_dedupe(view))


def with_online_store(config: Any, online_store: Any) -> Any:
    """A shallow copy of the ``RepoConfig`` ``config`` with ``online_store`` as its online
    store config; ``config`` is unchanged. ``RepoConfig.online_store`` is a read-only
    property over ``_online_store`` (built from the YAML on first use)."""
    patched = copy.copy(config)
    patched._online_store = online_store
    return patched


def write_duckdb_data_source(*args: Any, **kwargs: Any) -> Any:
    """``feast.infra.offline_stores.duckdb._write_data_source``: the writer Feast's DuckDB
    offline store hands to its ibis queries."""
    from feast.infra.offline_stores.duckdb import _write_data_source

    return _write_data_source(*args, **kwargs)


def declared_arrow_types(views: list[Any]) -> dict[str, Any]:
    """Each feature's column as a retrieval with full feature names calls it
    (``view__feature``), and the Arrow type of the Feast type its view declares
    (``feast.type_map.feast_value_type_to_pa``)."""
    from feast.type_map import feast_value_type_to_pa

    return {
        f"{view.projection.name_to_use()}__{feature.name}": feast_value_type_to_pa(
            feature.dtype.to_value_type()
        )
        for view in views
        for feature in view.features
    }


def forget_retrieval_tables(job: Any) -> None:
    """Drop what a retrieval registered in ibis's DuckDB connection.

    ibis (12) keeps every in-memory table registered until the process exits, so
    each chunk's entity rows would otherwise stay in memory; Feast's file reads
    leave a view per source and call behind too.
    """
    import ibis
    import ibis.expr.operations as ops

    table = getattr(job, "table", None)
    if table is None:
        return
    backend = ibis.get_backend()
    for op in table.op().find((ops.InMemoryTable, ops.DatabaseTable)):
        if isinstance(op, ops.InMemoryTable):
            backend.con.unregister(op.name)
        elif op.name.startswith("ibis_read_parquet_"):
            backend.con.execute(f'DROP VIEW IF EXISTS "{op.name}"')


def unpatched(name: str) -> Callable[..., Any]:
    """What a patch replaced (``"OnDemandFeatureView.transform_dict"``), for the tests that
    check whether upstream still needs it."""
    from feast.on_demand_feature_view import OnDemandFeatureView

    current = {"OnDemandFeatureView.transform_dict": OnDemandFeatureView.transform_dict}
    return _UNPATCHED.get(name, current[name])


def apply_patches() -> None:
    global _PATCHED
    if _PATCHED:
        return
    _emit_projected_names_from_python_odfvs()
    _PATCHED = True


def _emit_projected_names_from_python_odfvs() -> None:
    """Online reads drop Python-mode on-demand features when ``full_feature_names=True``.

    ``utils._augment_response_with_on_demand_transforms`` keeps only transformed
    columns whose names match the requested refs, which are ``view__feature``
    under full names; the Python (dict) path never renames the UDF's short
    names, unlike the Arrow path used offline. The result: the features vanish
    from the response without an error. Emitting both names from the dict path
    lets the existing selection find them, in either naming mode.
    """
    from feast.on_demand_feature_view import OnDemandFeatureView

    original = OnDemandFeatureView.transform_dict
    _UNPATCHED["OnDemandFeatureView.transform_dict"] = original

    def transform_dict(self: OnDemandFeatureView, feature_dict: dict[str, Any]) -> dict[str, Any]:
        output = original(self, feature_dict)
        for feature in self.features:
            projected = self._get_projected_feature_name(feature.name)
            if feature.name in output and projected not in output:
                output[projected] = output[feature.name]
        return output

    OnDemandFeatureView.transform_dict = transform_dict  # type: ignore[method-assign]


def rebase_file_sources(store: Any, features_dir: str) -> None:
    """Make every file source of ``store``'s registry point into ``features_dir``.

    Feast's ``registry.db`` stores each source's absolute path as it was at
    ``apply``, so a copied data dir read the original's feature files. The
    registry is re-read whenever its file changes (``Registry._registry_store``),
    so the rebase wraps that read, and fixes the proto already loaded. Nothing is
    written: the registry file stays as it is, only this process reads it rebased.
    """
    registry = store.registry
    backing = getattr(registry, "_registry_store", None)
    if backing is None or getattr(backing, "_feastline_rebased", None) == features_dir:
        return
    read = backing.get_registry_proto

    def get_registry_proto() -> Any:
        proto = read()
        _rebase_proto(proto, features_dir)
        return proto

    backing.get_registry_proto = get_registry_proto
    backing._feastline_rebased = features_dir
    cached = getattr(registry, "cached_registry_proto", None)
    if cached is not None:
        _rebase_proto(cached, features_dir)


def _rebase_proto(proto: Any, features_dir: str) -> None:
    prefix = features_dir.rstrip("/") + "/"
    sources = [view.spec.batch_source for view in proto.feature_views]
    sources += list(proto.data_sources)
    for source in sources:
        uri = source.file_options.uri
        if uri and not uri.startswith(prefix) and "/features/" in uri:
            source.file_options.uri = prefix + uri.rpartition("/features/")[2]
