"""The training set a model run uses: reused when nothing behind it changed, then split by time.

A set is reused only when its manifest matches the request: the same window,
feature service and feature list, prediction lead and raw watermark, and the
file's content still hashes to the manifest's fingerprint. Anything else
rebuilds it. Rebuilding feature tables without new raw data (``python -m
feature_repo build-features --full``) does not move the watermark: pass
``--rebuild-dataset`` after one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from feature_repo.raw_layer import RawLayer
from feature_repo.settings import Settings
from feature_repo.store import dataset_module, open_store
from training.dataset import (
    TrainingSet,
    build_training_set,
    default_output,
    feature_refs,
    fingerprint,
    manifest_path,
)

log = logging.getLogger(__name__)

TIME_COLUMN = "sched_dep_ts"


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    valid: pd.DataFrame


def expected_manifest(settings: Settings, start: date, end: date, store: Any) -> dict[str, Any]:
    """The manifest fields that decide whether a stored set still answers the request."""
    service = dataset_module(settings).FEATURE_SERVICE_NAME
    watermark = RawLayer(settings.raw_dir).watermark()
    if watermark is None:
        raise RuntimeError("no raw data published; run `python -m feature_repo ingest` first")
    if watermark < end:
        raise RuntimeError(
            f"raw data is published through {watermark}, before {end}; ingest through {end} first"
        )
    try:
        refs, _ = feature_refs(store, service)
    except Exception as err:  # Feast's not-found errors share no base class worth naming
        raise RuntimeError(
            f"cannot read feature service {service!r} from the Feast registry ({err}); "
            "run `python -m feature_repo apply` first"
        ) from None
    return {
        "window": {"start": start.isoformat(), "end": end.isoformat(), "timezone": "UTC"},
        "feature_service": service,
        "features": [ref.replace(":", "__") for ref in refs],
        "prediction_lead_minutes": int(settings.prediction_lead.total_seconds() // 60),
        "raw_watermark": str(watermark),
    }


def reusable(path: Path, expected: dict[str, Any]) -> TrainingSet | None:
    manifest_file = manifest_path(path)
    if not (path.is_file() and manifest_file.is_file()):
        return None
    try:
        manifest = json.loads(manifest_file.read_text())
    except json.JSONDecodeError:
        return None
    stale = [key for key, value in expected.items() if manifest.get(key) != value]
    if stale:
        log.info("training set is stale", extra={"path": str(path), "differs": stale})
        return None
    frame = pd.read_parquet(path)
    if fingerprint(frame) != manifest.get("fingerprint"):
        log.warning("training set does not match its fingerprint", extra={"path": str(path)})
        return None
    return TrainingSet(manifest, path=path, loaded=frame)


def load_or_build(
    settings: Settings, start: date, end: date, rebuild: bool = False, store: Any | None = None
) -> tuple[TrainingSet, bool]:
    """The training set for ``start..end``, and whether a stored one was reused."""
    store = store or open_store(settings)
    out = default_output(settings, start, end)
    if not rebuild:
        found = reusable(out, expected_manifest(settings, start, end, store))
        if found is not None:
            log.info("training set reused", extra={"path": str(out)})
            return found, True
    built = build_training_set(settings, start, end, store=store, out=out)
    log.info("training set built", extra={"path": str(out), "rows": built.manifest["rows"]})
    return built, False


def end_of_day_utc(day: date) -> pd.Timestamp:
    return pd.Timestamp(day + timedelta(days=1), tz="UTC")


def time_split(frame: pd.DataFrame, train_end: date) -> Split:
    """Train on flights scheduled up to the end of ``train_end`` (UTC), validate on later ones."""
    times = frame[TIME_COLUMN]
    if not times.is_monotonic_increasing:
        # Time-ordered cross-validation slices rows by position.
        raise ValueError(f"training set is not sorted by {TIME_COLUMN}")
    cut = end_of_day_utc(train_end)
    train = frame[times < cut].reset_index(drop=True)
    valid = frame[times >= cut].reset_index(drop=True)
    if train.empty or valid.empty:
        raise ValueError(
            f"splitting at the end of {train_end} leaves {len(train)} training and "
            f"{len(valid)} validation rows; both windows need flights"
        )
    return Split(train=train, valid=valid)
