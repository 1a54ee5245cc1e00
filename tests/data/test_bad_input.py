"""Corrupt and mis-typed raw batches are rejected by name, and nothing published changes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from feature_repo.flights.source import default_source_dir
from feature_repo.validation import BatchRejected
from tests.conftest import PIPELINE_THROUGH, tree_checksums

NEXT_DAY = date(2013, 3, 1)


@pytest.fixture()
def source_copy(tmp_path: Path) -> Path:
    target = tmp_path / "source"
    shutil.copytree(default_source_dir(), target)
    return target


def _rewrite_flights(source: Path, edit) -> None:
    archive = source / "flights.csv.zip"
    with zipfile.ZipFile(archive) as z:
        frame = pd.read_csv(z.open("flights.csv"))
    frame = edit(frame)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("flights.csv", frame.to_csv(index=False))


def _ingest(settings, source: Path) -> None:
    from feature_repo.pipeline import ingest

    ingest(settings, NEXT_DAY, source_dir=source)


def _mistype(frame: pd.DataFrame) -> pd.DataFrame:
    frame["dep_delay"] = frame["dep_delay"].astype(object)
    frame.loc[frame.index[60000], "dep_delay"] = "late"
    return frame


def _out_of_range(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[frame.index[60000], "distance"] = -5
    return frame


def _null_key(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[frame.index[60000], "carrier"] = None
    return frame


def _drop_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["sched_dep_time"])


@pytest.mark.parametrize(
    ("edit", "column", "problem"),
    [
        (_mistype, "dep_delay", "non-numeric values such as 'late'"),
        (_out_of_range, "distance", "values outside"),
        (_null_key, "carrier", "null values in a non-null column"),
        (_drop_column, "sched_dep_time", "missing column"),
    ],
)
def test_bad_flights_batch_is_rejected_and_nothing_changes(
    pipeline, source_copy, edit, column, problem
) -> None:
    settings = pipeline.settings
    before = tree_checksums(settings.raw_dir, settings.features_dir)
    _rewrite_flights(source_copy, edit)
    with pytest.raises(BatchRejected) as raised:
        _ingest(settings, source_copy)
    err = raised.value
    assert err.file.endswith("flights.csv.zip")
    assert err.column == column
    assert problem in str(err)
    assert tree_checksums(settings.raw_dir, settings.features_dir) == before


def test_corrupt_archive_is_rejected_and_nothing_changes(pipeline, source_copy) -> None:
    settings = pipeline.settings
    before = tree_checksums(settings.raw_dir, settings.features_dir)
    archive = source_copy / "flights.csv.zip"
    archive.write_bytes(archive.read_bytes()[:4096])
    with pytest.raises(BatchRejected, match=r"flights\.csv\.zip.*cannot be parsed"):
        _ingest(settings, source_copy)
    assert tree_checksums(settings.raw_dir, settings.features_dir) == before


def test_mistyped_weather_file_is_rejected(pipeline, source_copy) -> None:
    settings = pipeline.settings
    before = tree_checksums(settings.raw_dir, settings.features_dir)
    weather = source_copy / "weather.csv"
    lines = weather.read_text().splitlines()
    fields = lines[5].split(",")
    fields[5] = "warm"  # temp
    lines[5] = ",".join(fields)
    weather.write_text("\n".join(lines) + "\n")
    with pytest.raises(BatchRejected, match=r"weather\.csv: column 'temp'"):
        _ingest(settings, source_copy)
    assert tree_checksums(settings.raw_dir, settings.features_dir) == before


def test_cli_reports_the_file_column_and_problem(pipeline, source_copy) -> None:
    _rewrite_flights(source_copy, _mistype)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "feature_repo",
            "ingest",
            "--through",
            str(NEXT_DAY),
            "--source-dir",
            str(source_copy),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    message = result.stderr
    assert "flights.csv.zip" in message and "'dep_delay'" in message


def test_watermark_cannot_move_backwards(pipeline) -> None:
    from feature_repo.raw_layer import RawLayer

    raw = RawLayer(pipeline.settings.raw_dir)
    assert raw.watermark() == PIPELINE_THROUGH
    with pytest.raises(ValueError, match="append-only"):
        raw.publish({}, {}, date(2013, 1, 5))


def test_a_bad_intraday_batch_publishes_nothing_and_leaves_the_open_day(tmp_path) -> None:
    """The open day's partition grows by rewrite: a rejected batch must leave it, and the
    watermark, exactly as they were."""
    from datetime import UTC, datetime

    from feature_repo.flights.source import load_raw_tables
    from feature_repo.raw_layer import RawLayer

    frame, contract = load_raw_tables().events["weather_observations"]
    day = frame[frame["observed_at"].dt.date == NEXT_DAY].copy()
    noon = datetime(2013, 3, 1, 12, tzinfo=UTC)
    bad = day.index[day["observed_at"] > pd.Timestamp("2013-03-01 15:00Z")][0]
    day.loc[bad, "origin"] = None
    raw = RawLayer(tmp_path / "raw")
    raw.publish({"weather_observations": (day, contract)}, {}, noon)
    before = tree_checksums(tmp_path)
    with pytest.raises(BatchRejected, match="origin"):
        raw.publish({"weather_observations": (day, contract)}, {}, noon.replace(hour=18))
    assert tree_checksums(tmp_path) == before
    assert raw.published_through() == noon
