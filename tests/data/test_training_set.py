"""Training sets are reproducible and self-describing."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd

WINDOW = (date(2013, 2, 1), date(2013, 2, 7))


def test_same_window_gives_the_same_fingerprint(pipeline, tmp_path) -> None:
    from training.dataset import (
        build_training_set,
        fingerprint,
        manifest_path,
        null_counts,
        write_training_set,
    )

    first = write_training_set(
        build_training_set(pipeline.settings, *WINDOW, store=pipeline.store), tmp_path / "a.parquet"
    )
    # Streamed to its file chunk by chunk, never whole in memory: the same set.
    second = build_training_set(
        pipeline.settings, *WINDOW, store=pipeline.store, out=tmp_path / "b.parquet"
    )
    assert second.loaded is None
    assert first.manifest["fingerprint"] == second.manifest["fingerprint"]
    streamed = pd.read_parquet(tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(streamed, first.frame)
    assert fingerprint(streamed) == second.manifest["fingerprint"]
    assert second.manifest["null_counts"] == null_counts(first.frame, first.manifest["features"])
    assert json.loads(manifest_path(tmp_path / "b.parquet").read_text()) == second.manifest
    manifest = json.loads(manifest_path(tmp_path / "a.parquet").read_text())
    assert manifest["window"] == {"start": "2013-02-01", "end": "2013-02-07", "timezone": "UTC"}
    assert manifest["feature_service"] == "flight_delay_v1"
    assert manifest["rows"] == len(pd.read_parquet(tmp_path / "a.parquet"))
    assert 0 < manifest["positive_rate"] < 1
    assert manifest["git_commit"]


def test_the_fingerprint_sees_a_changed_value(pipeline) -> None:
    from training.dataset import fingerprint

    frame = pipeline.training_set.frame
    changed = frame.copy()
    changed.loc[changed.index[0], "weather_hourly__temp_f"] += 0.5
    assert fingerprint(frame) != fingerprint(changed)


def test_prediction_time_precedes_departure_by_the_lead(pipeline) -> None:
    frame = pipeline.training_set.frame
    lead = frame["sched_dep_ts"] - frame["event_timestamp"]
    assert (lead == pipeline.settings.prediction_lead).all()
    assert frame["label"].isin([0, 1]).all()


def test_any_chunk_size_gives_the_same_set(pipeline, tmp_path, monkeypatch) -> None:
    """Chunks are disjoint, increasing ranges of prediction time, each sorted and
    written to its own file: the set, its dtypes and its fingerprint must not depend
    on where the chunks are cut (including integer columns that have nulls in some
    chunks and not in others)."""
    import training.dataset as dataset

    whole = dataset.build_training_set(pipeline.settings, *WINDOW, store=pipeline.store)
    monkeypatch.setattr(dataset, "CHUNK_ROWS", 997)
    out = tmp_path / "chunked.parquet"
    chunked = dataset.build_training_set(pipeline.settings, *WINDOW, store=pipeline.store, out=out)
    assert whole.manifest["rows"] > 4 * 997  # several chunks
    pd.testing.assert_frame_equal(chunked.frame, whole.frame)
    assert chunked.manifest["fingerprint"] == whole.manifest["fingerprint"]
    assert chunked.manifest["null_counts"] == whole.manifest["null_counts"]


def test_a_set_that_reuses_a_stored_one_is_the_set_built_from_scratch(pipeline, tmp_path) -> None:
    """A later, longer build takes the stored set's leading days whose entity rows are
    unchanged and retrieves only the rest: the same rows, dtypes and fingerprint as a
    build from scratch. A stored set whose file no longer matches its fingerprint is not
    used (the build retrieves everything)."""
    from datetime import UTC, datetime

    import pyarrow.parquet as pq

    from training.dataset import build_training_set

    start = date(2013, 2, 1)
    earlier = build_training_set(
        pipeline.settings, start, date(2013, 2, 7), store=pipeline.store,
        out=tmp_path / "earlier.parquet", as_of=datetime(2013, 2, 8, tzinfo=UTC),
    )  # fmt: skip
    later = (start, date(2013, 2, 12))
    as_of = datetime(2013, 2, 13, tzinfo=UTC)
    scratch = build_training_set(pipeline.settings, *later, store=pipeline.store, as_of=as_of)
    reused = build_training_set(
        pipeline.settings, *later, store=pipeline.store, as_of=as_of,
        out=tmp_path / "reused.parquet",
        reuse=(tmp_path / "earlier.parquet", earlier.manifest["fingerprint"]),
    )  # fmt: skip
    taken = reused.manifest["reused"]
    assert taken["from"] == "earlier.parquet"
    # Every day but the earlier set's last prediction day (its flights departing after
    # midnight are not in it) comes from the stored file.
    assert 0.7 * earlier.manifest["rows"] < taken["rows"] < earlier.manifest["rows"]
    assert reused.manifest["fingerprint"] == scratch.manifest["fingerprint"]
    assert reused.manifest["null_counts"] == scratch.manifest["null_counts"]
    pd.testing.assert_frame_equal(reused.frame, scratch.frame)

    # One changed value in the stored file: its fingerprint no longer matches.
    table = pq.read_table(tmp_path / "earlier.parquet").to_pandas()
    table.loc[table.index[5], "weather_hourly__temp_f"] += 1.0
    table.to_parquet(tmp_path / "corrupt.parquet", index=False)
    rebuilt = build_training_set(
        pipeline.settings, *later, store=pipeline.store, as_of=as_of,
        reuse=(tmp_path / "corrupt.parquet", earlier.manifest["fingerprint"]),
    )  # fmt: skip
    assert "reused" not in rebuilt.manifest
    assert rebuilt.manifest["fingerprint"] == scratch.manifest["fingerprint"]


def test_a_stored_set_with_other_labels_is_reused_only_before_them(pipeline, tmp_path) -> None:
    """The stored set was built when fewer labels were knowable (as of the evening of its
    last day): the days whose labels arrived since are retrieved again, and the result is
    still the set built from scratch."""
    from datetime import UTC, datetime

    from training.dataset import build_training_set

    start, end = date(2013, 2, 1), date(2013, 2, 9)
    early = build_training_set(
        pipeline.settings, start, end, store=pipeline.store, out=tmp_path / "early.parquet",
        as_of=datetime(2013, 2, 10, tzinfo=UTC),
    )  # fmt: skip
    as_of = datetime(2013, 2, 11, 12, tzinfo=UTC)
    scratch = build_training_set(pipeline.settings, start, end, store=pipeline.store, as_of=as_of)
    reused = build_training_set(
        pipeline.settings, start, end, store=pipeline.store, as_of=as_of,
        reuse=(tmp_path / "early.parquet", early.manifest["fingerprint"]),
    )  # fmt: skip
    assert reused.manifest["fingerprint"] == scratch.manifest["fingerprint"]
    pd.testing.assert_frame_equal(reused.frame, scratch.frame)
    # Flights of the evening of the 9th landed after midnight: labelled only later.
    assert scratch.manifest["rows"] > early.manifest["rows"]
    assert 0 < reused.manifest["reused"]["rows"] < early.manifest["rows"]


def test_day_bounds_are_each_days_first_and_past_last_row() -> None:
    """The reuse check slices both sets day by day at these offsets: one datetime per day,
    the row offsets of a row-by-row pass, in any order of the rows and across chunks."""
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa

    from training.dataset import _day_bounds

    first = datetime(2013, 3, 9, 22, 30, tzinfo=UTC)
    times = [first + timedelta(hours=5 * i) for i in range(40)]  # ten days, midnight crossings

    def naive(values: list[datetime | None]) -> dict:
        bounds: dict = {}
        for i, value in enumerate(values):
            day = None if value is None else value.replace(hour=0, minute=0, second=0)
            bounds[day] = (bounds.get(day, (i, i))[0], i + 1)
        return bounds

    for values in (times, times[::-1], [*times[20:], *times[:20]], [*times[:3], None]):
        column = pa.chunked_array(
            [values[:7], values[7:]], type=pa.timestamp("us", tz="UTC")
        )  # fmt: skip
        bounds = _day_bounds(column)
        assert bounds == naive(values)
        assert list(bounds) == list(naive(values))  # the same order of days
    assert len(_day_bounds(pa.chunked_array([times], type=pa.timestamp("us", tz="UTC")))) == 10
