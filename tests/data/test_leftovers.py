"""Scratch folders and their sweep (feature_repo/leftovers.py), on folders made here."""

from __future__ import annotations

import os
from pathlib import Path

from feature_repo.leftovers import OWNER_FILE, scratch_folder, sweep_scratch


def test_the_scratch_sweep_takes_dead_runs_folders_only(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    dead = scratch / "training-set.dead"
    dead.mkdir(parents=True)
    (dead / OWNER_FILE).touch()  # its owner died: nobody holds the lock
    (dead / "entities.parquet").write_bytes(b"half")
    unowned_old = scratch / "training-set.old"
    unowned_old.mkdir()
    os.utime(unowned_old, (0, 0))
    unowned_new = scratch / "training-set.new"  # made a moment ago, owner about to lock
    unowned_new.mkdir()
    marker = scratch / "materialize-writing.weather_hourly"  # the Materializer's own
    marker.write_text("window")
    with scratch_folder(scratch, "training-set.") as live:
        removed = sweep_scratch(scratch)
        assert live.is_dir()
    assert sorted(removed) == sorted([dead, unowned_old])
    assert unowned_new.is_dir() and marker.is_file()
    assert not live.exists()  # its owner removed it when done
