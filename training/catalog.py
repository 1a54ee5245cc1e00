"""The stored training sets: immutable, content-addressed, listed and pruned.

Each build is stored under its own name, the window plus a short content id
(the first 12 hex digits of its fingerprint), with its manifest beside it::

    datasets/training_20130101_20130531_3f9c2a1b7d4e.parquet
    datasets/training_20130101_20130531_3f9c2a1b7d4e.manifest.json

A stored set is never rewritten: a build whose content is already stored keeps
the stored file (and its manifest), and a build with new content gets a new
name. So every model's ``training_set`` stays the file it was trained on, and
a model can be audited or reproduced later. The Parquet file is moved into
place first and the manifest written last, so a set is listed only once both
exist. Sets from before content addressing (``training_<start>_<end>.parquet``)
are listed and pruned the same way.

``prune`` removes sets no model references (by path or by fingerprint), and
never one younger than a grace period: a ``train`` run registers its model a
few minutes after it stores its set.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from feature_repo.atomic_io import atomic_path, write_json
from feature_repo.settings import Settings
from model_registry import relative_to_data, resolve_data_path
from training.dataset import TrainingSet, build_training_set, fingerprint, manifest_path

log = logging.getLogger(__name__)

CONTENT_ID_LENGTH = 12
MANIFEST_SUFFIX = ".manifest.json"
DEFAULT_PRUNE_GRACE_SECONDS = 3600


def content_id(fingerprint_hex: str) -> str:
    return fingerprint_hex[:CONTENT_ID_LENGTH]


def stored_path(settings: Settings, start: date, end: date, fingerprint_hex: str) -> Path:
    name = f"training_{start:%Y%m%d}_{end:%Y%m%d}_{content_id(fingerprint_hex)}.parquet"
    return settings.datasets_dir / name


@dataclass(frozen=True)
class StoredSet:
    """One stored training set: its file, its manifest, and who references it."""

    path: Path
    manifest: dict[str, Any]
    models: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> str:
        return str(self.manifest.get("fingerprint", ""))

    @property
    def window(self) -> str:
        window = self.manifest.get("window", {})
        return f"{window.get('start', '?')}..{window.get('end', '?')}"

    @property
    def as_of(self) -> str:
        # Sets built before as-of builds record only the day the watermark covered.
        return str(self.manifest.get("as_of") or self.manifest.get("raw_watermark", "?"))

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(manifest_path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def verified(path: Path) -> TrainingSet | None:
    """The set at ``path`` if its file still hashes to its manifest's fingerprint."""
    import pandas as pd

    manifest = read_manifest(path)
    if manifest is None or not path.is_file():
        return None
    frame = pd.read_parquet(path)
    if fingerprint(frame) != manifest.get("fingerprint"):
        log.warning("training set does not match its fingerprint", extra={"path": str(path)})
        return None
    return TrainingSet(manifest, path=path, loaded=frame)


def build_and_store(
    settings: Settings,
    start: date,
    end: date,
    store: Any | None = None,
    as_of: datetime | None = None,
    reuse: tuple[Path, str] | None = None,
) -> tuple[TrainingSet, bool]:
    """Build the set and store it under its content name; returns it and whether that
    content was stored already (then the stored file and manifest are kept as they are).
    ``reuse`` (a stored set's path and fingerprint) goes to ``build_training_set``."""
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".staging.", dir=settings.datasets_dir) as tmp:
        built = build_training_set(
            settings,
            start,
            end,
            store=store,
            out=Path(tmp) / "set.parquet",
            as_of=as_of,
            reuse=reuse,
        )
        target = stored_path(settings, start, end, built.manifest["fingerprint"])
        existing = read_manifest(target)
        if target.is_file() and existing is not None:
            if existing.get("fingerprint") != built.manifest["fingerprint"]:
                raise RuntimeError(
                    f"{target} holds other content than its name says "
                    f"({existing.get('fingerprint')}); refusing to touch it"
                )
            log.info("training set already stored", extra={"path": str(target)})
            return TrainingSet(existing, path=target), True
        manifest = dict(built.manifest, path=relative_to_data(settings.data_dir, target))
        with atomic_path(target) as tmp_target:
            shutil.move(str(built.path), tmp_target)
        write_json(manifest, manifest_path(target))
    log.info("training set stored", extra={"path": str(target), "rows": manifest["rows"]})
    return TrainingSet(manifest, path=target), False


def store_built(settings: Settings, training_set: TrainingSet) -> TrainingSet:
    """Store a set built in memory under its content name (kept if already stored)."""
    from training.dataset import write_training_set

    window = training_set.manifest["window"]
    target = stored_path(
        settings,
        date.fromisoformat(window["start"]),
        date.fromisoformat(window["end"]),
        training_set.manifest["fingerprint"],
    )
    existing = read_manifest(target)
    if target.is_file() and existing is not None:
        return TrainingSet(existing, path=target)
    written = write_training_set(training_set, target)
    manifest = dict(written.manifest, path=relative_to_data(settings.data_dir, target))
    write_json(manifest, manifest_path(target))
    return TrainingSet(manifest, path=target, loaded=written.loaded)


def stored_sets(settings: Settings) -> list[StoredSet]:
    """Every stored set with a manifest, oldest first, with the models that reference it."""
    references = model_references(settings)
    out = []
    for manifest_file in sorted(settings.datasets_dir.glob(f"training_*{MANIFEST_SUFFIX}")):
        stem = manifest_file.name.removesuffix(MANIFEST_SUFFIX)
        path = manifest_file.with_name(f"{stem}.parquet")
        manifest = read_manifest(path)
        if manifest is None:
            continue
        models = sorted(
            {
                tag
                for tag, (ref_path, ref_fp) in references.items()
                if ref_fp == manifest.get("fingerprint")
                or (ref_path is not None and ref_path.resolve() == path.resolve())
            }
        )
        out.append(StoredSet(path, manifest, tuple(models)))
    return sorted(out, key=lambda s: (manifest_file_time(s.path), s.path.name))


def manifest_file_time(path: Path) -> float:
    try:
        return manifest_path(path).stat().st_mtime
    except OSError:
        return 0.0


def model_references(settings: Settings) -> dict[str, tuple[Path | None, str]]:
    """tag -> (training-set path, fingerprint) from every model's metadata."""
    from training.registry import list_models

    out = {}
    for record in list_models(settings):
        training_set = record.metadata.get("training_set") or {}
        out[record.tag] = (
            resolve_data_path(settings.data_dir, training_set.get("path")),
            str(training_set.get("fingerprint", "")),
        )
    return out


def prune(
    settings: Settings,
    grace_seconds: float = DEFAULT_PRUNE_GRACE_SECONDS,
    dry_run: bool = False,
) -> list[StoredSet]:
    """Remove the stored sets no model references and older than ``grace_seconds``."""
    from training.registry import registry_lock

    removed = []
    # Under the registry lock no promotion or metadata update runs meanwhile.
    with registry_lock(settings):
        now = time.time()
        for stored in stored_sets(settings):
            if stored.models or now - manifest_file_time(stored.path) < grace_seconds:
                continue
            removed.append(stored)
            if dry_run:
                continue
            # Manifest first: a set without one is no longer listed or reused.
            manifest_path(stored.path).unlink(missing_ok=True)
            stored.path.unlink(missing_ok=True)
            log.info("training set pruned", extra={"path": str(stored.path)})
    return removed
