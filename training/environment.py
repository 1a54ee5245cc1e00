"""What a model was trained with, beyond data and code: library versions and a lock hash.

``models reproduce`` compares these with the running environment and says
which differ, because a different scikit-learn or NumPy can change the fitted
trees even on identical rows.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from importlib import metadata
from typing import Any

# The libraries whose versions decide what a fit and a training-set build produce.
KEY_LIBRARIES = (
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "duckdb",
    "feast",
    "bentoml",
    "threadpoolctl",
)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in KEY_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def installed_lock() -> list[str]:
    """``name==version`` of every installed distribution, normalised and sorted."""
    entries = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            entries.add(f"{name.lower().replace('_', '-')}=={dist.version}")
    return sorted(entries)


def lock_hash() -> str:
    """sha256 of :func:`installed_lock`, one entry per line: equal hashes, equal packages."""
    # Listing every distribution takes ~0.4 s, paid by each retrain of a loop. Installing,
    # upgrading or removing one adds or removes its ``.dist-info`` folder, which changes
    # the mtime of the sys.path folder holding it: while no sys.path folder changed, the
    # list (and so the hash) is the one computed last.
    stamp = _search_path_stamp()
    cached = _lock_hashes.get(stamp)
    if cached is None:
        cached = hashlib.sha256("\n".join(installed_lock()).encode()).hexdigest()
        _lock_hashes.clear()
        _lock_hashes[stamp] = cached
    return cached


_lock_hashes: dict[tuple[tuple[str, int], ...], str] = {}


def _search_path_stamp() -> tuple[tuple[str, int], ...]:
    stamp = []
    for entry in sys.path:
        try:
            stamp.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            stamp.append((entry, -1))
    return tuple(stamp)


def environment() -> dict[str, Any]:
    return {"libraries": library_versions(), "lock_sha256": lock_hash()}


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What changed between two :func:`environment` records, for people to read."""
    out = []
    before, after = recorded.get("libraries", {}), current.get("libraries", {})
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            out.append(f"{name} {before.get(name, '?')} -> {after.get(name, '?')}")
    if recorded.get("lock_sha256") != current.get("lock_sha256"):
        out.append(
            f"installed packages lock {str(recorded.get('lock_sha256', '?'))[:12]} -> "
            f"{str(current.get('lock_sha256', '?'))[:12]}"
        )
    return out
