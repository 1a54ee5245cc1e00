"""Training/serving skew: what was served against what the offline store says.

The service logs, per served flight, the entity keys and request-time fields
it sent to Feast and the model-input values it got back
(``monitoring.served_features``). This module samples those rows, asks Feast's
offline store for the same feature service at the same instant
(``get_historical_features`` with ``event_timestamp = served_at``, full
feature names and strict as-of semantics, as training sets are built), and
counts the values that differ.

A mismatch means serving and training disagree about a feature at one moment:
an online value that was overwritten or never refreshed, an on-demand
transformation that differs, a TTL applied on one side only. Values compare
equal when both are missing, or within a tiny relative tolerance (numbers
travel through protobuf online and Parquet offline).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from feature_repo.partition_checksums import PartitionVerifier
from monitoring.served_features import FLIGHT_ID, MODEL_TAG, SERVED_AT

EVENT_TIMESTAMP = "event_timestamp"
_ROW = "__skew_row"
_EXAMPLES = 3


class SkewInputError(ValueError):
    """Nothing to check, or the log lacks what Feast needs; the message names the folder."""


@dataclass(frozen=True)
class ColumnSkew:
    column: str
    compared: int
    mismatches: int
    served_missing_only: int  # served None, offline has a value
    offline_missing_only: int  # served a value, offline has none
    max_abs_diff: float | None
    examples: tuple[dict[str, Any], ...] = ()

    @property
    def share(self) -> float:
        return self.mismatches / self.compared if self.compared else 0.0


@dataclass(frozen=True)
class SkewResult:
    source: str
    window: tuple[datetime | None, datetime | None]
    available_rows: int
    sampled_rows: int
    feature_services: tuple[str, ...]
    model_tags: tuple[str, ...]
    columns: tuple[ColumnSkew, ...]
    rows_with_mismatch: int
    max_mismatch_share: float = 0.0
    not_compared: tuple[str, ...] = field(default=())

    @property
    def values_compared(self) -> int:
        return sum(c.compared for c in self.columns)

    @property
    def mismatches(self) -> int:
        return sum(c.mismatches for c in self.columns)

    @property
    def mismatch_share(self) -> float:
        return self.mismatches / self.values_compared if self.values_compared else 0.0

    @property
    def failed(self) -> bool:
        return self.mismatches > 0 and self.mismatch_share > self.max_mismatch_share

    @property
    def reasons(self) -> list[str]:
        if not self.failed:
            return []
        worst = sorted((c for c in self.columns if c.mismatches), key=lambda c: -c.mismatches)
        named = ", ".join(f"{c.column} ({c.mismatches})" for c in worst[:5])
        return [
            f"{self.mismatches} of {self.values_compared} served values differ from the "
            f"offline store ({self.mismatch_share:.2%} > {self.max_mismatch_share:.2%}): {named}"
        ]

    def to_dict(self) -> dict[str, Any]:
        start, end = self.window
        return {
            "kind": "skew",
            "failed": self.failed,
            "reasons": self.reasons,
            "source": self.source,
            "window": {
                "start": start.isoformat() if start else None,
                "end": end.isoformat() if end else None,
            },
            "available_rows": self.available_rows,
            "sampled_rows": self.sampled_rows,
            "feature_services": list(self.feature_services),
            "model_tags": list(self.model_tags),
            "values_compared": self.values_compared,
            "mismatches": self.mismatches,
            "mismatch_share": round(self.mismatch_share, 6),
            "rows_with_mismatch": self.rows_with_mismatch,
            "max_mismatch_share": self.max_mismatch_share,
            "not_compared": list(self.not_compared),
            "columns": [
                {
                    "column": c.column,
                    "compared": c.compared,
                    "mismatches": c.mismatches,
                    "served_missing_only": c.served_missing_only,
                    "offline_missing_only": c.offline_missing_only,
                    "max_abs_diff": c.max_abs_diff,
                    "examples": list(c.examples),
                }
                for c in self.columns
            ],
        }


def request_columns(store: Any, service_name: str) -> tuple[list[str], list[str]]:
    """(join keys, request-time fields) that ``service_name`` needs in an entity row."""
    service = store.get_feature_service(service_name)
    views = {v.name: v for v in store.list_feature_views()}
    on_demand = {v.name: v for v in store.list_on_demand_feature_views()}
    keys: list[str] = []
    fields: list[str] = []
    for projection in service.feature_view_projections:
        if projection.name in views:
            for column in views[projection.name].entity_columns:
                name = projection.join_key_map.get(column.name, column.name)
                if name not in keys:
                    keys.append(name)
        elif projection.name in on_demand:
            for source in on_demand[projection.name].source_request_sources.values():
                fields.extend(f.name for f in source.schema if f.name not in fields)
    return keys, fields


def feature_columns(store: Any, service_name: str) -> list[str]:
    """The service's features by full name, ``<view>__<feature>``."""
    service = store.get_feature_service(service_name)
    return [
        f"{projection.name_to_use()}__{feature.name}"
        for projection in service.feature_view_projections
        for feature in projection.features
    ]


def offline_values(
    store: Any, service_name: str, served: pd.DataFrame, keys: Sequence[str]
) -> pd.DataFrame:
    """The service's features for each served row, as of its ``served_at``; same row order."""
    entity = served[list(keys)].copy()
    entity[EVENT_TIMESTAMP] = pd.to_datetime(served[SERVED_AT], utc=True)
    entity[_ROW] = np.arange(len(entity))
    service = store.get_feature_service(service_name)
    # Feast reads the partitions itself: check the ones that can hold a match first.
    PartitionVerifier().verify_service_reads(
        store,
        service,
        entity[EVENT_TIMESTAMP].min().to_pydatetime(),
        entity[EVENT_TIMESTAMP].max().to_pydatetime() + timedelta(microseconds=1),
    )
    job = store.get_historical_features(
        entity_df=entity.reset_index(drop=True),
        features=service,
        full_feature_names=True,
        filter_by_created_timestamp=True,
    )
    frame = job.to_df()
    if len(frame) != len(entity):
        raise RuntimeError(
            f"offline retrieval returned {len(frame)} rows for {len(entity)} served rows"
        )
    return frame.sort_values(_ROW, kind="stable").reset_index(drop=True)


def _missing(series: pd.Series) -> np.ndarray:
    return series.isna().to_numpy()


def _plain(value: Any) -> Any:
    """JSON-ready scalar: NaN and pandas' NA become None, NumPy scalars plain Python."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def compare_column(
    column: str,
    served: pd.Series,
    offline: pd.Series,
    context: pd.DataFrame,
    rtol: float = 1e-9,
    atol: float = 1e-9,
) -> tuple[ColumnSkew, np.ndarray]:
    """The column's counts, and which rows differ."""
    served = served.reset_index(drop=True)
    offline = offline.reset_index(drop=True)
    s_missing, o_missing = _missing(served), _missing(offline)
    both = ~s_missing & ~o_missing
    numeric = pd.api.types.is_numeric_dtype(offline) and not pd.api.types.is_bool_dtype(offline)
    diff_max = None
    if numeric:
        s_num = pd.to_numeric(served, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        o_num = pd.to_numeric(offline, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        close = np.isclose(s_num, o_num, rtol=rtol, atol=atol)
        differ = both & ~close
        if both.any():
            diff_max = float(np.nanmax(np.abs(s_num[both] - o_num[both])))
    else:
        differ = both & (served.astype(str).to_numpy() != offline.astype(str).to_numpy())
    mismatch = differ | (s_missing != o_missing)
    examples = []
    for i in np.flatnonzero(mismatch)[:_EXAMPLES]:
        examples.append(
            {
                FLIGHT_ID: _plain(context[FLIGHT_ID].iloc[i]) if FLIGHT_ID in context else None,
                SERVED_AT: pd.Timestamp(context[SERVED_AT].iloc[i]).isoformat(),
                "served": _plain(served.iloc[i]),
                "offline": _plain(offline.iloc[i]),
            }
        )
    return ColumnSkew(
        column=column,
        compared=len(served),
        mismatches=int(mismatch.sum()),
        served_missing_only=int((s_missing & ~o_missing).sum()),
        offline_missing_only=int((~s_missing & o_missing).sum()),
        max_abs_diff=diff_max,
        examples=tuple(examples),
    ), mismatch


def check(
    served: pd.DataFrame,
    store: Any,
    feature_service_of: dict[str, str],
    *,
    source: str,
    window: tuple[datetime | None, datetime | None],
    inputs_of: Mapping[str, Sequence[str]] | None = None,
    sample: int | None = 500,
    seed: int = 0,
    max_mismatch_share: float = 0.0,
    rtol: float = 1e-9,
) -> SkewResult:
    """Compare a sample of ``served`` rows with the offline store.

    ``feature_service_of`` maps each model tag in the log to its feature
    service, ``inputs_of`` to its model inputs (both from the registry). A tag
    without a service is an input error. Without inputs, the features the log
    holds for that tag are compared: the log has one column set for all tags,
    so another model's columns would count as missing values served.
    """
    available = len(served)
    if available == 0:
        raise SkewInputError(f"{source}: no served rows between {window[0]} and {window[1]}")
    rows = served
    if sample is not None and sample < available:
        rows = served.sample(n=sample, random_state=seed)
    rows = rows.sort_values(SERVED_AT, kind="stable").reset_index(drop=True)
    tags = rows[MODEL_TAG].astype(str) if MODEL_TAG in rows else pd.Series("", index=rows.index)
    unknown = sorted(set(tags) - set(feature_service_of))
    if unknown:
        raise SkewInputError(f"{source}: no feature service known for model tags {unknown}")
    per_column: dict[str, list[ColumnSkew]] = {}
    not_compared: set[str] = set()
    mismatched_rows = 0
    for tag, group in rows.groupby(tags, sort=True):
        service_name = feature_service_of[str(tag)]
        group = group.reset_index(drop=True)
        keys, fields = request_columns(store, service_name)
        missing = [c for c in [*keys, *fields, SERVED_AT] if c not in group.columns]
        if missing:
            raise SkewInputError(
                f"{source}: the served-features log lacks {missing}, which feature service "
                f"{service_name} needs to re-fetch the rows"
            )
        inputs = set(inputs_of[str(tag)]) if inputs_of and str(tag) in inputs_of else None
        if inputs is None:
            # The log's columns are the union over models: keep this tag's non-empty ones.
            inputs = {c for c in group.columns if group[c].notna().any()}
        offline = offline_values(store, service_name, group, [*keys, *fields])
        any_mismatch = np.zeros(len(group), dtype=bool)
        for name in feature_columns(store, service_name):
            if name not in inputs or name not in group.columns:
                # Not a model input, so never logged: nothing to compare with.
                not_compared.add(name)
                continue
            skew, flags = compare_column(name, group[name], offline[name], group, rtol, rtol)
            per_column.setdefault(name, []).append(skew)
            any_mismatch |= flags
        mismatched_rows += int(any_mismatch.sum())
    columns = tuple(_combine(parts) for parts in per_column.values())
    return SkewResult(
        source=source,
        window=window,
        available_rows=available,
        sampled_rows=len(rows),
        feature_services=tuple(sorted({feature_service_of[str(t)] for t in set(tags)})),
        model_tags=tuple(sorted(set(tags))),
        columns=columns,
        rows_with_mismatch=mismatched_rows,
        max_mismatch_share=max_mismatch_share,
        not_compared=tuple(sorted(not_compared - set(per_column))),
    )


def _combine(parts: list[ColumnSkew]) -> ColumnSkew:
    """One column's counts over the groups of rows (one group per model)."""
    if len(parts) == 1:
        return parts[0]
    diffs = [p.max_abs_diff for p in parts if p.max_abs_diff is not None]
    return ColumnSkew(
        column=parts[0].column,
        compared=sum(p.compared for p in parts),
        mismatches=sum(p.mismatches for p in parts),
        served_missing_only=sum(p.served_missing_only for p in parts),
        offline_missing_only=sum(p.offline_missing_only for p in parts),
        max_abs_diff=max(diffs) if diffs else None,
        examples=tuple(e for p in parts for e in p.examples)[:_EXAMPLES],
    )


def build_alert(result: SkewResult, report: str | None = None) -> dict[str, Any]:
    start, end = result.window
    return {
        "kind": "skew",
        "model_tag": ",".join(result.model_tags) or None,
        "window": {
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
        },
        "failed": result.failed,
        "reasons": result.reasons,
        "mismatches": result.mismatches,
        "values_compared": result.values_compared,
        "columns": [
            {"column": c.column, "mismatches": c.mismatches, "examples": list(c.examples)}
            for c in result.columns
            if c.mismatches
        ],
        "report": report,
    }
