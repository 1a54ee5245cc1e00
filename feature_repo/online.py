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
    def __init__(self, store: Any, service_name: str) -> None:
        self.store = store
        self.service = store.get_feature_service(service_name)
        self.feature_names: list[str] = []
        self._ttl_seconds: dict[str, float] = {}  # feature -> TTL of its view (0 = never expires)
        self._view_of: dict[str, str] = {}  # feature -> its feature view
        self._derived_from: dict[str, set[str]] = {}  # on-demand feature -> input views
        views = {v.name: v for v in store.list_feature_views()}
        on_demand = {v.name: v for v in store.list_on_demand_feature_views()}
        for projection in self.service.feature_view_projections:
            prefix = projection.name_to_use()
            names = [f"{prefix}__{f.name}" for f in projection.features]
            self.feature_names.extend(names)
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

    def read(self, rows: Mapping[str, Sequence[Any]], now_epoch: float) -> OnlineFeatures:
        """``rows`` is columnar: entity join keys and request fields, one list each."""
        response = self.store.get_online_features(
            features=self.service, entity_rows=rows, full_feature_names=True
        )
        raw = response.to_dict(include_event_timestamps=True)
        count = len(next(iter(rows.values())))
        values: dict[str, list[Any]] = {}
        stale: dict[str, list[bool]] = {}
        view_stale: dict[str, list[bool]] = {}
        for name in self.feature_names:
            column = list(raw.get(name, [None] * count))
            flags = [False] * count
            ttl = self._ttl_seconds.get(name)
            if ttl:
                stamps = raw.get(f"{name}__ts", [0] * count)
                for i, stamp in enumerate(stamps):
                    # All features of a view share one timestamp per entity.
                    if stamp and now_epoch - stamp > ttl:
                        flags[i] = column[i] is not None
                        column[i] = None
                view_stale[self._view_of[name]] = [
                    bool(stamp) and now_epoch - stamp > ttl for stamp in stamps
                ]
            values[name] = column
            stale[name] = flags
        for name, views in self._derived_from.items():
            for view in views:
                for i, is_stale in enumerate(view_stale.get(view, ())):
                    if is_stale and values[name][i] is not None:
                        stale[name][i] = True
                        values[name][i] = None
        return OnlineFeatures(values=values, stale=stale, rows=count)
