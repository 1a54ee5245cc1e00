"""The source is read once per process, and again as soon as a source file changes."""

from __future__ import annotations

import shutil
from pathlib import Path

from feature_repo.flights.source import default_source_dir, load_raw_tables


def test_the_tables_are_reused_until_a_source_file_changes(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(default_source_dir(), source)
    first = load_raw_tables(source)
    assert load_raw_tables(source) is first

    planes = source / "planes.csv"
    lines = planes.read_text().splitlines()
    planes.write_text("\n".join(lines[:-1]) + "\n")  # one plane fewer
    second = load_raw_tables(source)
    assert second is not first
    before, after = first.static["planes"][0], second.static["planes"][0]
    assert len(after) == len(before) - 1
