"""Feature partition checksums (feature_repo/partition_checksums.py), on small files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from feature_repo.partition_checksums import (
    MANIFEST,
    CorruptPartition,
    PartitionVerifier,
    publish_partitions,
)


def _staged(folder: Path, name: str, payload: bytes) -> Path:
    path = folder / name
    path.write_bytes(payload)
    return path


def _day(table: Path, day: str) -> Path:
    return table / f"date={day}" / "part-0.parquet"


def test_published_partitions_verify_and_damage_is_named(tmp_path: Path) -> None:
    table = tmp_path / "features" / "weather_hourly"
    table.mkdir(parents=True)
    publish_partitions(
        table,
        {
            "date=2013-01-01": _staged(tmp_path, "a", b"first day " * 100),
            "date=2013-01-02": _staged(tmp_path, "b", b"second day " * 100),
        },
    )
    files = [_day(table, "2013-01-01"), _day(table, "2013-01-02")]
    PartitionVerifier().verify(files)

    damaged = bytearray(files[1].read_bytes())
    damaged[100:110] = bytes(10)  # same size, bytes overwritten in place
    files[1].write_bytes(bytes(damaged))
    with pytest.raises(CorruptPartition, match=f"feature partition {files[1]} is corrupt"):
        PartitionVerifier().verify(files)


def test_a_build_killed_between_rename_and_record_stays_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the first rename: one day is new, one old; both verify, and the
    next build records the new digests."""
    table = tmp_path / "t"
    table.mkdir()
    publish_partitions(
        table,
        {
            "date=2013-01-01": _staged(tmp_path, "a", b"old a"),
            "date=2013-01-02": _staged(tmp_path, "b", b"old b"),
        },
    )
    real_replace = os.replace

    def dies_on_the_second_day(src: str | Path, dst: str | Path) -> None:
        if str(dst).endswith("date=2013-01-02/part-0.parquet"):
            raise KeyboardInterrupt  # stands for the SIGKILL
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dies_on_the_second_day)
    with pytest.raises(KeyboardInterrupt):
        publish_partitions(
            table,
            {
                "date=2013-01-01": _staged(tmp_path, "c", b"new a"),
                "date=2013-01-02": _staged(tmp_path, "d", b"new b"),
            },
        )
    monkeypatch.setattr(os, "replace", real_replace)
    assert _day(table, "2013-01-01").read_bytes() == b"new a"
    assert _day(table, "2013-01-02").read_bytes() == b"old b"
    PartitionVerifier().verify([_day(table, "2013-01-01"), _day(table, "2013-01-02")])

    publish_partitions(table, {"date=2013-01-02": _staged(tmp_path, "e", b"new b")})
    manifest = json.loads((table / MANIFEST).read_text())
    assert "replacing" not in manifest and len(manifest["files"]) == 2
    PartitionVerifier().verify([_day(table, "2013-01-01"), _day(table, "2013-01-02")])


def test_a_table_built_before_manifests_is_adopted_by_its_next_build(tmp_path: Path) -> None:
    table = tmp_path / "t"
    old = _day(table, "2013-01-01")
    old.parent.mkdir(parents=True)
    old.write_bytes(b"built before manifests")
    PartitionVerifier().verify([old])  # no manifest: read unchecked
    publish_partitions(table, {"date=2013-01-02": _staged(tmp_path, "b", b"new day")})
    assert set(json.loads((table / MANIFEST).read_text())["files"]) == {
        "date=2013-01-01/part-0.parquet",
        "date=2013-01-02/part-0.parquet",
    }
    old.write_bytes(b"built before manifests, then damaged")
    with pytest.raises(CorruptPartition, match="is corrupt"):
        PartitionVerifier().verify([old])
