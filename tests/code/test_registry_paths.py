"""Metadata paths are relative to the data dir; older absolute ones still resolve."""

from __future__ import annotations

from pathlib import Path

from model_registry import relative_to_data, resolve_data_path


def test_a_path_inside_the_data_dir_is_recorded_relative(tmp_path: Path) -> None:
    data = tmp_path / "data"
    inside = data / "datasets" / "training_20130101_20130531_b9f56aa86d26.parquet"
    assert (
        relative_to_data(data, inside) == "datasets/training_20130101_20130531_b9f56aa86d26.parquet"
    )
    # ... and resolves under wherever the data dir is now.
    moved = tmp_path / "elsewhere"
    assert resolve_data_path(moved, relative_to_data(data, inside)) == (
        moved / "datasets" / inside.name
    )


def test_a_path_outside_the_data_dir_and_old_absolute_metadata_stay_absolute(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    outside = tmp_path / "profiles" / "ref.bin"
    assert relative_to_data(data, outside) == str(outside.resolve())
    legacy = "/srv/feastline/data/monitoring/references/flight_delay_x.bin"
    assert resolve_data_path(data, legacy) == Path(legacy)
    assert resolve_data_path(data, "") is None and resolve_data_path(data, None) is None
