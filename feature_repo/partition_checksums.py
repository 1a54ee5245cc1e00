"""sha256 checksums of the feature tables' day partitions, kept beside them, checked on read.

Profiles carry their checksum in a trailer (``feature_repo.checksums``); a
Parquet file cannot: DuckDB and Feast find its footer at the end of the file,
and the key-value metadata inside the footer is part of the bytes it would
vouch for. So each table folder holds a manifest, ``_checksums.json``, with the
sha256 of each ``date=YYYY-MM-DD/part-0.parquet`` in it (a leading ``_`` keeps
Spark and Feast from reading it as data).

Writing (:func:`publish_partitions`, every feature build): the new digests are
recorded as ``replacing`` beside the current ones, the staged files are renamed
into place, then the new digests become the current ones. A build killed
anywhere leaves each file old or new, and the manifest accepts either until the
next build redoes those days (a killed build never moved the feature watermark).

Reading (:class:`PartitionVerifier`): a reader hashes only the partitions its
query can read, once per run, before handing them to DuckDB or Feast; a
mismatch names the file, under the data dir, and how to rebuild it. A table
built before manifests existed is read unchecked until its next build, which
adopts the files already there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from feature_repo.atomic_io import write_json
from feature_repo.checksums import ChecksumMismatch

log = logging.getLogger(__name__)

MANIFEST = "_checksums.json"
PARTITION_FILE = "part-0.parquet"
# Feature tables are partitioned by the UTC day of ``event_timestamp``
# (feature_repo/feature_build.py); only such sources can be pruned by day.
DAY_PARTITION = "date=*"
REBUILD = "`python -m feature_repo build-features --full` rebuilds the tables from the raw layer"


class CorruptPartition(ChecksumMismatch):
    """A feature partition's bytes differ from what its build recorded."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _manifest_path(table_dir: Path) -> Path:
    return table_dir / MANIFEST


def _read_manifest(table_dir: Path) -> dict[str, Any] | None:
    path = _manifest_path(table_dir)
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise CorruptPartition(
            f"the checksum manifest {path} is unreadable ({err}); {REBUILD}"
        ) from None
    return manifest if isinstance(manifest, dict) else {}


def _relative(day_folder: str) -> str:
    return f"{day_folder}/{PARTITION_FILE}"


def publish_partitions(table_dir: Path, staged: Mapping[str, Path]) -> None:
    """Move each staged file (by its day folder, ``date=YYYY-MM-DD``) to
    ``<table_dir>/<day folder>/part-0.parquet`` and record its checksum (see the module
    docstring for the order that keeps a killed build readable)."""
    if not staged:
        return
    manifest = _read_manifest(table_dir)
    files: dict[str, str] = dict((manifest or {}).get("files", {}))
    if manifest is None:  # a table built before manifests: adopt what is there
        for path in sorted(table_dir.glob(f"{DAY_PARTITION}/{PARTITION_FILE}")):
            files[_relative(path.parent.name)] = file_sha256(path)
    # A killed build's pending days: each file is the old one or the new one.
    for relative, pending in (manifest or {}).get("replacing", {}).items():
        path = table_dir / relative
        if path.exists() and file_sha256(path) == pending:
            files[relative] = pending
    new = {_relative(day): file_sha256(path) for day, path in staged.items()}
    # One line: a year's manifest is written twice per build, every intraday step.
    write_json({"files": files, "replacing": new}, _manifest_path(table_dir), indent=None)
    for day, path in staged.items():
        final = table_dir / day / PARTITION_FILE
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, final)  # same filesystem: atomic per file
    write_json({"files": {**files, **new}}, _manifest_path(table_dir), indent=None)


def day_partitions(source: Any) -> list[tuple[date, Path]]:
    """``(day, file)`` for a FileSource path like ``<root>/date=*/part-0.parquet``, oldest
    first; empty for any other source."""
    root, marker, rest = str(getattr(source, "path", "")).partition(f"/{DAY_PARTITION}/")
    if not marker or "*" in root or "*" in rest:
        return []
    out = []
    for path in Path(root).glob(f"{DAY_PARTITION}/{rest}"):
        name = path.relative_to(root).parts[0]
        try:
            out.append((date.fromisoformat(name.removeprefix("date=")), path))
        except ValueError:
            continue
    return sorted(out)


def as_of_partitions(
    partitions: list[tuple[date, Path]], ttl: timedelta | None, first: datetime, last: datetime
) -> list[Path]:
    """The partitions that can hold an as-of match for prediction times in
    ``[first, last)``: from ``first`` minus the view's TTL (without one, zero, every
    earlier day) to the day of the last prediction time."""
    until = (last - timedelta(microseconds=1)).date()
    since = (first - ttl).date() if ttl else date.min
    return [path for day, path in partitions if since <= day <= until]


class PartitionVerifier:
    """Checks feature partitions against their table's manifest, each file once.

    ``seconds`` is the time spent hashing and checking, for the cost of the checks."""

    def __init__(self) -> None:
        self.verified: set[Path] = set()
        self.manifests: dict[Path, dict[str, Any] | None] = {}
        self.seconds = 0.0
        self.bytes = 0

    def verify(self, paths: Iterable[Path]) -> None:
        started = time.perf_counter()
        try:
            for path in paths:
                if path not in self.verified:
                    self._check(path)
                    self.verified.add(path)
        finally:
            self.seconds += time.perf_counter() - started

    def _check(self, path: Path) -> None:
        table_dir = path.parent.parent
        if table_dir not in self.manifests:
            self.manifests[table_dir] = _read_manifest(table_dir)
        manifest = self.manifests[table_dir]
        if manifest is None:  # built before manifests; its next build adopts the files
            return
        relative = _relative(path.parent.name)
        accepted = {
            digest
            for digest in (
                manifest.get("files", {}).get(relative),
                manifest.get("replacing", {}).get(relative),
            )
            if digest
        }
        where = _manifest_path(table_dir)
        if not accepted:
            raise CorruptPartition(
                f"feature partition {path} is not in its checksum manifest {where}; {REBUILD}"
            )
        self.bytes += path.stat().st_size
        if file_sha256(path) not in accepted:
            raise CorruptPartition(
                f"feature partition {path} is corrupt: its sha256 differs from the one "
                f"recorded in {where} when it was built; {REBUILD}"
            )

    def verify_service_reads(
        self, store: Any, service: Any, first: datetime, last: datetime
    ) -> None:
        """Before a point-in-time read of ``service``'s features for prediction times in
        ``[first, last)``: every partition of its views that can hold a match."""
        for view in service_batch_views(store, service):
            partitions = day_partitions(view.batch_source)
            self.verify(as_of_partitions(partitions, view.ttl, first, last))


def service_batch_views(store: Any, service: Any) -> list[Any]:
    """The batch feature views a feature service reads, on-demand views' sources included."""
    on_demand = {view.name: view for view in store.list_on_demand_feature_views()}
    names: list[str] = []
    for projection in service.feature_view_projections:
        odfv = on_demand.get(projection.name)
        if odfv is None:
            names.append(projection.name)
        else:
            names.extend(p.name for p in odfv.source_feature_view_projections.values())
    return [store.get_feature_view(name) for name in dict.fromkeys(names)]
