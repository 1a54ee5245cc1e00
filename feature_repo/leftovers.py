"""Temporary files a killed run left behind, removed by the next run.

Every write goes to ``.<name>.<random>.tmp`` beside its target and is renamed
over it (``atomic_io``); a SIGKILL between the two leaves the temporary file.
Readers never see it (DuckDB and Feast read ``part-0.parquet`` names only), but
it takes space, and nothing else would ever remove it. Ingest, the only writer
of ``raw/`` and ``features/``, sweeps both before it starts.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

TEMP_GLOB = ".*.tmp"


def sweep_temp_files(*roots: Path) -> list[Path]:
    """Delete every leftover temporary file below ``roots``; returns what was removed."""
    removed = []
    for root in roots:
        if not root.is_dir():
            continue
        for path in root.rglob(TEMP_GLOB):
            if path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        log.info("removed temporary files left by a killed run", extra={"files": len(removed)})
    return removed
