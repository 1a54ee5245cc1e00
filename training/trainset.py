"""The training set a model run uses: reused when nothing behind it changed, then split by time.

A stored set (``training.catalog``) is reused only when its manifest matches the
request: the same window, feature service and feature list, prediction lead,
feature definitions (the tables' SQL and the views' TTLs, types and code:
:func:`training.dataset.definitions_digest`) and the same as-of instant (the
raw watermark), and the file's content still hashes to the manifest's
fingerprint. Anything else builds a new set, stored under a new name; the old
one stays for the models that reference it. A changed query or view therefore
builds afresh; ``--rebuild-dataset`` forces that for anything else (a feature
table rebuilt by hand without a definition change).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from feature_repo.settings import Settings
from feature_repo.store import dataset_module, open_store
from training.catalog import StoredSet, build_and_store, stored_sets, verified
from training.dataset import TrainingSet, definitions_digest, feature_refs, resolve_as_of

log = logging.getLogger(__name__)

TIME_COLUMN = "sched_dep_ts"


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    valid: pd.DataFrame


def expected_manifest(
    settings: Settings, start: date, end: date, store: Any, as_of: datetime | None = None
) -> dict[str, Any]:
    """The manifest fields that decide whether a stored set still answers the request."""
    dataset = dataset_module(settings)
    service = dataset.FEATURE_SERVICE_NAME
    as_of = resolve_as_of(settings, end, as_of)
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
        "definitions": definitions_digest(store, service, dataset.SQL_DIR),
        "as_of": as_of.isoformat(),
    }


def find_stored(settings: Settings, expected: dict[str, Any]) -> TrainingSet | None:
    """The newest stored set whose manifest matches ``expected`` and whose file is intact."""
    for stored in reversed(stored_sets(settings)):
        stale = [key for key, value in expected.items() if stored.manifest.get(key) != value]
        if stale:
            log.debug("stored set differs", extra={"path": str(stored.path), "differs": stale})
            continue
        found = verified(stored.path)
        if found is not None:
            return found
    return None


def find_base(settings: Settings, expected: dict[str, Any]) -> tuple[Path, str] | None:
    """The stored set a build for ``expected`` can take its leading days from: the same
    start, feature service, features and lead, ending no later and as of no later (the
    newest such). Its rows are checked before any is used (``build_training_set``)."""
    window = expected["window"]
    same = ("feature_service", "features", "prediction_lead_minutes", "definitions")
    best: tuple[tuple[str, str], StoredSet] | None = None
    for stored in stored_sets(settings):
        manifest = stored.manifest
        theirs = manifest.get("window") or {}
        if (
            any(manifest.get(key) != expected[key] for key in same)
            or theirs.get("start") != window["start"]
            or str(theirs.get("end", "9999")) > window["end"]
            or not manifest.get("as_of")
            or datetime.fromisoformat(manifest["as_of"]) > datetime.fromisoformat(expected["as_of"])
            or not stored.fingerprint
        ):
            continue
        key = (str(theirs["end"]), str(manifest["as_of"]))
        if best is None or key > best[0]:
            best = (key, stored)
    return None if best is None else (best[1].path, best[1].fingerprint)


def load_or_build(
    settings: Settings,
    start: date,
    end: date,
    rebuild: bool = False,
    store: Any | None = None,
    as_of: datetime | None = None,
) -> tuple[TrainingSet, bool]:
    """The training set for ``start..end`` as of ``as_of`` (default: the raw watermark),
    and whether a stored one was reused."""
    store = store or open_store(settings)
    base = None
    if not rebuild:
        expected = expected_manifest(settings, start, end, store, as_of)
        found = find_stored(settings, expected)
        if found is not None:
            log.info("training set reused", extra={"path": str(found.path)})
            return found, True
        # A loop retrains on a window that grew by a few days: the days a stored set
        # already holds, unchanged, are taken from it. ``rebuild`` (after feature tables
        # were rebuilt) retrieves every row again.
        base = find_base(settings, expected)
    built, already_stored = build_and_store(
        settings, start, end, store=store, as_of=as_of, reuse=base
    )
    log.info(
        "training set built",
        extra={"path": str(built.path), "rows": built.manifest["rows"], "stored": already_stored},
    )
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
