"""Temporary files and folders a killed run left behind, removed by the next run.

Every write goes to ``.<name>.<random>.tmp`` beside its target and is renamed
over it (``atomic_io``); a feature build stages a table's new days in a
``.<table>.<random>.tmp`` folder beside it. A SIGKILL between the two leaves
the temporary file or folder. Readers never see them (DuckDB and Feast read
``part-0.parquet`` names only), but they take space, and nothing else would
ever remove them. Ingest, the only writer of ``raw/`` and ``features/``,
sweeps both before it starts.

``state/scratch/`` holds the working folders of runs that may overlap (two
training-set builds, a materialization): a sweep there must never take a live
run's folder. Each folder's owner holds an exclusive ``flock`` on its
``.owner`` file for as long as it works (:func:`scratch_folder`); the kernel
drops the lock when the owner dies, however it dies, so a folder whose lock
can be taken is a dead run's.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

TEMP_GLOB = ".*.tmp"
OWNER_FILE = ".owner"
# A folder without an owner file is either from before owner files, or was made a
# moment ago and its owner is about to lock it: only an old one is a leftover.
UNOWNED_GRACE_SECONDS = 600.0


def sweep_temp_files(*roots: Path) -> list[Path]:
    """Delete every leftover temporary file or staging folder below ``roots``; returns
    what was removed."""
    removed = []
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob(TEMP_GLOB)):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            elif path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        log.info("removed temporary files left by a killed run", extra={"files": len(removed)})
    return removed


@contextmanager
def scratch_folder(root: Path, prefix: str) -> Iterator[Path]:
    """A new folder under ``root`` for one run's work, owned (locked) while it is in use
    and removed afterwards; a killed run's folder is left for :func:`sweep_scratch`."""
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    owner = os.open(folder / OWNER_FILE, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(owner, fcntl.LOCK_EX)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(owner)


def sweep_scratch(root: Path, now: float | None = None) -> list[Path]:
    """Remove the folders under ``root`` whose owner is dead; returns what was removed.

    Plain files are left alone: their writers clear their own (the Materializer's
    in-flight markers, under its run lock).
    """
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    removed = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        if _owner_is_dead(folder, now):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    if removed:
        log.info(
            "removed scratch folders left by a killed run",
            extra={"folders": [p.name for p in removed]},
        )
    return removed


def _owner_is_dead(folder: Path, now: float) -> bool:
    try:
        handle = os.open(folder / OWNER_FILE, os.O_RDWR)
    except FileNotFoundError:
        try:
            age = now - folder.stat().st_mtime
        except FileNotFoundError:
            return False  # removed meanwhile
        return age > UNOWNED_GRACE_SECONDS
    try:
        # flock locks belong to open file descriptions, not processes: even this
        # process's own live folder refuses the lock here.
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(handle)  # also drops the lock when it was taken
    return True
