"""The leakage guard fires on a feature table that saw the future, and only then."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from feature_repo.atomic_io import write_parquet
from feature_repo.partition_checksums import publish_partitions

WINDOW = (date(2013, 2, 10), date(2013, 2, 11))


def _tamper(path: Path) -> bytes:
    """Stamp one row's ``source_ts`` a day past its event time, as a feature query that
    read the future would have built it (checksum recorded); return the original bytes."""
    original = path.read_bytes()
    frame = pd.read_parquet(path)
    event_epoch = pd.to_datetime(frame["event_timestamp"], utc=True).iloc[0].timestamp()
    frame.loc[0, "source_ts"] = int(event_epoch) + 86400
    staged = path.with_name("tampered.parquet.tmp")
    write_parquet(pa.Table.from_pandas(frame, preserve_index=False), staged)
    _publish(path, staged)
    return original


def _publish(path: Path, staged: Path) -> None:
    """``staged`` into place at ``path``, the way a feature build does (checksums too)."""
    publish_partitions(path.parent.parent, {path.parent.name: staged})


def _restore(path: Path, original: bytes) -> None:
    staged = path.with_name("restored.parquet.tmp")
    staged.write_bytes(original)
    _publish(path, staged)


def test_correct_tables_pass_the_guard(pipeline) -> None:
    from training.dataset import build_training_set

    built = build_training_set(pipeline.settings, *WINDOW, store=pipeline.store)
    assert built.manifest["rows"] > 1000
    assert not any(c.endswith("__source_ts") for c in built.frame.columns)


def test_a_future_dated_row_makes_the_guard_fire(pipeline) -> None:
    from training.dataset import LeakageError, build_training_set

    partition = (
        pipeline.settings.features_dir / "weather_hourly" / "date=2013-02-10" / "part-0.parquet"
    )
    original = _tamper(partition)
    try:
        with pytest.raises(LeakageError, match=r"weather_hourly: \d+ rows use data from after"):
            build_training_set(pipeline.settings, *WINDOW, store=pipeline.store)
    finally:
        _restore(partition, original)
