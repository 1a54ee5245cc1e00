"""Reading a feature service from the online store, with TTLs applied.

Feast's online reads do not apply feature-view TTLs (a known Feast behaviour):
a value written weeks ago comes back as if it were current. Offline,
point-in-time retrieval treats the same value as expired (null). So that
serving sees what training saw, this reader masks every value older than its
view's TTL at "now" as missing and reports it as *stale*; on-demand features
computed from a stale input are masked and reported the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class OnlineFeatures:
    values: dict[str, list[Any]]  # full feature name -> one value per row (None = missing)
    stale: dict[str, list[bool]]  # older than the view's TTL at "now"; value masked to None
    rows: int

    def missing(self, row: int) -> list[str]:
        return [name for name, column in self.values.items() if column[row] is None]

    def stale_in(self, row: int) -> list[str]:
        return [name for name, flags in self.stale.items() if flags[row]]


class OnlineFeatureReader:
    """Reads a feature service through ``FeatureStore.get_online_features``.

    Everything that depends only on the service (feature names, views, TTLs,
    types) is worked out once here, not per request. The response is read
    from ``OnlineResponse.proto`` directly rather than through ``to_dict``:
    ``to_dict`` runs Feast's general value converter (~3 µs a value, a third
    of a one-flight read) and fetches timestamps for every feature, where one
    column per view with a TTL is enough. Plain scalar values are taken as
    they are; anything else still goes through Feast's converter, so the
    values are exactly those ``to_dict`` would give.

    Given several services (a champion's and a challenger's), it reads their
    union in one call: every feature once, as ``view:feature`` references,
    because Feast resolves a ``FeatureService`` object by name from the registry.
    """

    def __init__(self, store: Any, service_name: str | Sequence[str]) -> None:
        from feast.type_map import feast_value_type_to_python_type
        from feast.types import Bool, Float32, Float64, Int32, Int64, String

        self._convert = feast_value_type_to_python_type
        self.store = store
        single = isinstance(service_name, str)
        names = [service_name] if single else list(dict.fromkeys(service_name))
        services = [store.get_feature_service(name) for name in names]
        self.service = services[0]
        projections = _union_projections(services)
        # One service: pass it as such (Feast caches its resolution); a union: references.
        self._request: Any = self.service
        if len(services) > 1:
            self._request = [f"{p.name}:{f.name}" for p in projections for f in p.features]
        self.feature_names: list[str] = []
        self._ttl_seconds: dict[str, float] = {}  # feature -> TTL of its view (0 = never expires)
        self._view_of: dict[str, str] = {}  # feature -> its feature view
        self._derived_from: dict[str, set[str]] = {}  # on-demand feature -> input views
        self._plain: set[str] = set()  # features whose values are plain Python scalars
        self._value_type: dict[str, Any] = {}  # feature -> Feast ValueType, for the converter
        plain_types = {Bool, Float32, Float64, Int32, Int64, String}
        views = {v.name: v for v in store.list_feature_views()}
        on_demand = {v.name: v for v in store.list_on_demand_feature_views()}
        for projection in projections:
            prefix = projection.name_to_use()
            names = [f"{prefix}__{f.name}" for f in projection.features]
            self.feature_names.extend(names)
            for name, feature in zip(names, projection.features, strict=True):
                self._value_type[name] = feature.dtype.to_value_type()
                if feature.dtype in plain_types:
                    self._plain.add(name)
            if projection.name in views:
                ttl = views[projection.name].ttl or timedelta(0)
                for name in names:
                    self._ttl_seconds[name] = ttl.total_seconds()
                    self._view_of[name] = projection.name
            elif projection.name in on_demand:
                sources = on_demand[projection.name].source_feature_view_projections.values()
                inputs = {source.name for source in sources}
                for name in names:
                    self._derived_from[name] = inputs
        # One feature per view with a TTL: its timestamps stand for the whole view,
        # because a view's features are written together, one timestamp per entity.
        self._stamp_column: dict[str, str] = {}
        for name, view in self._view_of.items():
            if self._ttl_seconds[name]:
                self._stamp_column.setdefault(view, name)

    def read(self, rows: Mapping[str, Sequence[Any]], now_epoch: float) -> OnlineFeatures:
        """``rows`` is columnar: entity join keys and request fields, one list each."""
        response = self.store.get_online_features(
            features=self._request, entity_rows=rows, full_feature_names=True
        )
        count = len(next(iter(rows.values())))
        vectors = dict(
            zip(response.proto.metadata.feature_names.val, response.proto.results, strict=True)
        )
        # Rows whose value is older than the view's TTL, per view with a TTL.
        expired_rows: dict[str, list[int]] = {}
        for view, name in self._stamp_column.items():
            ttl = self._ttl_seconds[name]
            vector = vectors.get(name)
            stamps = [ts.seconds for ts in vector.event_timestamps] if vector else []
            expired_rows[view] = [
                i for i, stamp in enumerate(stamps) if stamp and now_epoch - stamp > ttl
            ]
        values: dict[str, list[Any]] = {}
        stale: dict[str, list[bool]] = {}
        for name in self.feature_names:
            vector = vectors.get(name)
            column = self._python_values(vector.values, name) if vector else [None] * count
            flags = [False] * count
            own_view = self._view_of.get(name)
            if own_view is not None:
                expired = expired_rows.get(own_view, ())
            else:  # on-demand: stale where any input view is
                expired = sorted(
                    {i for v in self._derived_from.get(name, ()) for i in expired_rows.get(v, ())}
                )
            for i in expired:
                if column[i] is not None:
                    flags[i] = True
                    column[i] = None
            values[name] = column
            stale[name] = flags
        return OnlineFeatures(values=values, stale=stale, rows=count)

    def _python_values(self, protos: Sequence[Any], name: str) -> list[Any]:
        """What ``OnlineResponse.to_dict`` gives for one feature, minus its per-value dispatch."""
        convert, value_type = self._convert, self._value_type.get(name)
        if name not in self._plain:
            return [convert(v, value_type) for v in protos]
        plain = _PLAIN_KINDS
        return [
            getattr(v, kind)
            if (kind := v.WhichOneof("val")) in plain
            else (None if kind is None else convert(v, value_type))
            for v in protos
        ]


def _union_projections(services: Sequence[Any]) -> list[Any]:
    """The services' feature-view projections, each view once with the union of its features."""
    import copy

    merged: dict[str, Any] = {}
    for service in services:
        for projection in service.feature_view_projections:
            if len(services) > 1 and projection.name_alias:
                raise ValueError(
                    f"feature service {service.name} renames view {projection.name}; "
                    "a union of services is read by view name, without aliases"
                )
            seen = merged.get(projection.name)
            if seen is None:
                seen = merged[projection.name] = copy.copy(projection)
                seen.features = list(projection.features)
                continue
            have = {f.name for f in seen.features}
            seen.features.extend(f for f in projection.features if f.name not in have)
    return list(merged.values())


_PLAIN_KINDS = frozenset(
    {"double_val", "float_val", "int64_val", "int32_val", "bool_val", "string_val"}
)
