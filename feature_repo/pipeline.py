"""The feature pipeline's steps: ingest raw data, build feature tables, register them."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from feature_repo.bounds import check_through
from feature_repo.feature_build import FeatureBuilder, FeatureBuildSummary
from feature_repo.leftovers import sweep_scratch, sweep_temp_files
from feature_repo.raw_layer import IngestSummary, RawLayer, through_instant
from feature_repo.settings import Settings
from feature_repo.store import dataset_module

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    raw: IngestSummary
    features: FeatureBuildSummary | None
    seconds: float


def raw_layer(settings: Settings) -> RawLayer:
    return RawLayer(settings.raw_dir)


def feature_builder(settings: Settings) -> FeatureBuilder:
    dataset = dataset_module(settings)
    parts = {
        "raw": raw_layer(settings),
        "features_dir": settings.features_dir,
        "sql_dir": dataset.SQL_DIR,
        "raw_tables": dataset.RAW_TABLES,
        "static_known_since": dataset.STATIC_KNOWN_SINCE,
    }
    if settings.engine == "spark":  # the same SQL files, transpiled (feature_repo/spark_build.py)
        from feature_repo.spark_build import SparkFeatureBuilder

        return SparkFeatureBuilder(settings=settings, **parts)
    return FeatureBuilder(**parts)


def _last_event(events: dict[str, Any]) -> datetime | None:
    """The newest ``knowable_at`` in the source, for the ingest bound."""
    import pandas as pd

    latest = [
        pd.Timestamp(frame["knowable_at"].max()) for frame, _ in events.values() if len(frame)
    ]
    return max(latest).to_pydatetime() if latest else None


_swept: set[tuple[Path, Path]] = set()


def ingest(
    settings: Settings,
    through: date | datetime,
    source_dir: Path | None = None,
    build_features: bool = True,
    scale: int = 1,
) -> IngestResult:
    """Publish everything knowable by ``through`` (an instant, or the end of a day), then
    update the features."""
    started = time.perf_counter()
    check_through(through, None)  # the wall clock first: it needs no source read
    # The folders it writes next: a file where one should be, or a read-only data dir,
    # fails here, naming the path, rather than after seconds of reading the source.
    for folder in (settings.raw_dir, settings.features_dir):
        folder.mkdir(parents=True, exist_ok=True)
    roots = (settings.raw_dir, settings.features_dir)
    if roots not in _swept:
        # What killed runs left (temporary files, scratch folders no live run owns): once
        # per process, since only a process that died leaves them, and a scheduler or a
        # replay ingesting every tick would otherwise walk every file each time.
        sweep_temp_files(*roots)
        sweep_scratch(settings.state_dir / "scratch")
        _swept.add(roots)
    raw = raw_layer(settings)
    previous = raw.published_through()
    if previous is not None and previous == through_instant(through):
        # Published through this very instant already: the layer is append-only, so no
        # source row can be new (and reading the source takes seconds).
        summary = IngestSummary(through=previous, previous=previous, rows={}, days_written=0)
    else:
        dataset = dataset_module(settings)
        tables = dataset.load_raw_tables(source_dir)
        check_through(through, _last_event(tables.events))
        if scale > 1:
            tables = dataset.replicate(tables, scale)
        summary = raw.publish(tables.events, tables.static, through)
    log.info(
        "raw ingest",
        extra={
            "through": summary.through.isoformat(),
            "previous": summary.previous.isoformat() if summary.previous else None,
            "rows": summary.rows,
        },
    )
    features = feature_builder(settings).build() if build_features else None
    if features:
        log.info(
            "features built",
            extra={
                "through": features.through.isoformat(),
                "rows": features.rows,
                "seconds": round(features.seconds, 2),
            },
        )
    return IngestResult(summary, features, time.perf_counter() - started)


def apply(settings: Settings) -> list[str]:
    from feature_repo.relocation import set_aside_if_corrupt
    from feature_repo.store import apply_definitions, open_store

    set_aside_if_corrupt(settings)  # apply rebuilds a corrupt registry from the definitions
    store = open_store(settings)
    names = apply_definitions(store, settings)
    log.info("feast apply", extra={"objects": names, "online_store": settings.online_store_kind})
    return names
