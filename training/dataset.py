"""Point-in-time correct training sets from Feast.

The entity rows are the labelled flights of a window, each at its prediction
time (scheduled departure minus the prediction lead). Features come from
``get_historical_features`` on the feature service, with strict as-of
semantics (``filter_by_created_timestamp=True``). A leakage guard then checks
each feature view's audit column ``source_ts`` (the newest raw input behind a
value) against the prediction time, and refuses to write a set that saw the future.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from feature_repo.atomic_io import write_json, write_parquet
from feature_repo.feature_build import connect_raw
from feature_repo.raw_layer import RawLayer, end_of_day
from feature_repo.settings import PROJECT_ROOT, Settings
from feature_repo.store import dataset_module, open_store

log = logging.getLogger(__name__)

AUDIT_COLUMN = "source_ts"
PREDICTION_TIME = "event_timestamp"


class LeakageError(RuntimeError):
    """A feature value was built from data newer than its prediction time."""


@dataclass(frozen=True)
class TrainingSet:
    frame: pd.DataFrame
    manifest: dict[str, Any]
    path: Path | None = None


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash that ignores file encoding: same rows and columns, same hash."""
    digest = hashlib.sha256()
    digest.update("|".join(f"{c}:{frame[c].dtype}" for c in frame.columns).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def entity_rows(settings: Settings, start: date, end: date) -> pd.DataFrame:
    """Labelled flights scheduled in [start, end] (UTC days), at their prediction times."""
    dataset = dataset_module(settings)
    raw = RawLayer(settings.raw_dir)
    watermark = raw.watermark()
    if watermark is None:
        raise RuntimeError("no raw data published; run `python -m feature_repo ingest` first")
    if watermark < end:
        raise RuntimeError(
            f"raw data is published through {watermark}, before --end {end}; "
            f"ingest through {end} first"
        )
    con = connect_raw(raw, ["departures", "arrivals"])
    params = {
        "start": datetime(start.year, start.month, start.day, tzinfo=UTC),
        "end": end_of_day(end),
        "lead_us": int(settings.prediction_lead / timedelta(microseconds=1)),
    }
    frame = con.execute(dataset.TRAINING_ENTITIES_SQL, params).fetch_df()
    con.close()
    for column in (PREDICTION_TIME, "sched_dep_ts"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def feature_refs(store: Any, service_name: str) -> tuple[list[str], list[str]]:
    """The service's feature references, plus the audit references for the leakage guard."""
    service = store.get_feature_service(service_name)
    refs, audit = [], []
    for projection in service.feature_view_projections:
        view = projection.name_to_use()
        refs.extend(f"{view}:{feature.name}" for feature in projection.features)
        try:
            source_view = store.get_feature_view(projection.name)
        except Exception:  # on-demand views have no batch source to audit
            continue
        if any(f.name == AUDIT_COLUMN for f in source_view.features):
            audit.append(f"{view}:{AUDIT_COLUMN}")
    return refs, audit


def check_leakage(frame: pd.DataFrame, audit_columns: list[str]) -> None:
    prediction_epoch = (frame[PREDICTION_TIME] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(
        seconds=1
    )
    problems = []
    for column in audit_columns:
        source = frame[column]
        future = source.notna() & (source > prediction_epoch)
        if future.any():
            row = frame.loc[future.idxmax()]
            seen = datetime.fromtimestamp(int(row[column]), UTC).isoformat()
            problems.append(
                f"{column.split('__')[0]}: {int(future.sum())} rows use data from after the "
                f"prediction time (e.g. flight {row.get('flight_id', '?')} predicted at "
                f"{row[PREDICTION_TIME].isoformat()} saw data from {seen})"
            )
    if problems:
        raise LeakageError("leakage guard: " + "; ".join(problems))


def build_training_set(
    settings: Settings, start: date, end: date, store: Any | None = None
) -> TrainingSet:
    started = time.perf_counter()
    dataset = dataset_module(settings)
    store = store or open_store(settings)
    entities = entity_rows(settings, start, end)
    if entities.empty:
        raise RuntimeError(f"no labelled flights between {start} and {end}")
    refs, audit_refs = feature_refs(store, dataset.FEATURE_SERVICE_NAME)
    job = store.get_historical_features(
        entity_df=entities,
        features=refs + audit_refs,
        full_feature_names=True,
        filter_by_created_timestamp=True,
    )
    frame = job.to_df()
    audit_columns = [ref.replace(":", "__") for ref in audit_refs]
    if len(frame) != len(entities):
        raise RuntimeError(
            f"feature retrieval returned {len(frame)} rows for {len(entities)} entity rows"
        )
    check_leakage(frame, audit_columns)
    frame = frame.drop(columns=audit_columns)
    frame = frame.sort_values([PREDICTION_TIME, "flight_id"], kind="stable").reset_index(drop=True)
    feature_columns = [ref.replace(":", "__") for ref in refs]
    label = dataset.LABEL_COLUMN
    manifest = {
        "window": {"start": start.isoformat(), "end": end.isoformat(), "timezone": "UTC"},
        "feature_service": dataset.FEATURE_SERVICE_NAME,
        "features": feature_columns,
        "label": label,
        "rows": len(frame),
        "positive_rate": round(float(frame[label].mean()), 6),
        "prediction_lead_minutes": int(settings.prediction_lead.total_seconds() // 60),
        "raw_watermark": str(RawLayer(settings.raw_dir).watermark()),
        "fingerprint": fingerprint(frame),
        "git_commit": git_commit(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return TrainingSet(frame=frame, manifest=manifest)


def write_training_set(training_set: TrainingSet, out: Path) -> TrainingSet:
    """Write ``<out>`` (Parquet) and ``<out>.manifest.json`` side by side, atomically."""
    table = pa.Table.from_pandas(training_set.frame, preserve_index=False)
    write_parquet(table, out)
    manifest = dict(training_set.manifest, path=str(out))
    write_json(manifest, manifest_path(out))
    return TrainingSet(training_set.frame, manifest, out)


def manifest_path(out: Path) -> Path:
    return out.with_name(out.stem + ".manifest.json")


def default_output(settings: Settings, start: date, end: date) -> Path:
    return settings.datasets_dir / f"training_{start:%Y%m%d}_{end:%Y%m%d}.parquet"


def null_counts(frame: pd.DataFrame, columns: list[str]) -> dict[str, int]:
    return {c: int(frame[c].isna().sum()) for c in columns}
