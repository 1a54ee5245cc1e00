"""ProfileLogger: every logged row lands in its interval's file, nothing raises into the caller."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from monitoring.intervals import stamp
from monitoring.profiler import ProfileLogger
from monitoring.profiles import ProfileBuilder, read_profile
from tests.monitoring.realdata import WEATHER_COLUMNS

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def july(weather: pd.DataFrame) -> pd.DataFrame:
    """July's hourly readings in source order: by airport, then by hour."""
    rows = weather.loc[weather["month"] == 7, [*WEATHER_COLUMNS, "time_hour"]]
    return rows.reset_index(drop=True)


def per_day(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby(frame["time_hour"].dt.floor("D")).size()


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_replay_rolls_one_file_per_simulated_day_with_every_row(
    july: pd.DataFrame, tmp_path: Path
) -> None:
    from whylogs.core import DatasetProfileView

    replay = july.sort_values("time_hour", kind="stable").reset_index(drop=True)
    records = replay.to_dict("records")
    logger = ProfileLogger(tmp_path, DAY, time_column="time_hour", max_wait_seconds=0.05)
    # The shapes a service sends: one dict per request, lists of dicts, small frames.
    for record in records[:600]:
        assert logger.log(record)
    assert logger.log(records[600:1200])
    for start in range(1200, len(replay), 100):
        assert logger.log(replay.iloc[start : start + 100])
    logger.close()

    expected = per_day(replay)
    files = sorted(tmp_path.glob("*.bin"))
    assert [f.name for f in files] == [f"profile-{stamp(day)}.bin" for day in expected.index]
    for path, (day, rows) in zip(files, expected.items(), strict=True):
        view = DatasetProfileView.read(str(path))  # whylogs' own reader
        assert view.get_column("temp").get_metric("counts").n.value == rows
        profile = read_profile(path)
        assert profile.rows == rows
        assert profile.window == (day.to_pydatetime(), (day + DAY).to_pydatetime())
        assert "time_hour" not in profile.columns
    stats = logger.stats
    assert stats.rows_logged == stats.rows_processed == len(replay)
    assert (stats.rows_dropped, stats.rows_failed, stats.errors, stats.queued_rows) == (0, 0, 0, 0)
    # In time order each day is written once, when the next day's rows arrive.
    assert stats.files_written == len(files)


def test_late_rows_reopen_their_day_and_nothing_is_counted_twice(
    july: pd.DataFrame, tmp_path: Path
) -> None:
    july = july[july["time_hour"] < pd.Timestamp("2013-07-08", tz="UTC")]
    logger = ProfileLogger(tmp_path, DAY, time_column="time_hour", max_wait_seconds=0.05)
    for _, airport in july.groupby("origin", sort=True):
        logger.log(airport)
        assert logger.flush()  # each airport's month is on disk before the next one's arrives
    logger.close()
    counts = {p.name: read_profile(p).rows for p in sorted(tmp_path.glob("*.bin"))}
    assert counts == {f"profile-{stamp(d)}.bin": n for d, n in per_day(july).items()}


def test_close_writes_the_open_interval(july: pd.DataFrame, tmp_path: Path) -> None:
    first_hour = july[july["time_hour"] == july["time_hour"].min()]
    with ProfileLogger(
        tmp_path, timedelta(hours=1), time_column="time_hour", writer_id="w1"
    ) as logger:
        logger.log(first_hour)
        assert not list(tmp_path.glob("*.bin"))  # nothing closed the hour yet
    (path,) = tmp_path.glob("*.bin")
    assert path.name == f"profile-{stamp(first_hour['time_hour'].min())}-w1.bin"
    profile = read_profile(path)
    assert profile.rows == len(first_hour) == 3
    assert profile.metadata["writer_id"] == "w1"
    assert not logger.log(first_hour), "a closed logger drops rows"
    assert logger.stats.rows_dropped == len(first_hour)


def test_a_full_queue_drops_and_counts_and_never_raises(july: pd.DataFrame, tmp_path: Path) -> None:
    records = july.drop(columns="time_hour").to_dict("records")
    # The worker only wakes for 1,000 rows or after a minute: the queue stays full.
    logger = ProfileLogger(tmp_path, DAY, max_queue=5, batch_size=1_000, max_wait_seconds=60)
    assert logger.log(records[:5])
    assert not logger.log(records[5:8])
    assert not logger.log(records[8])
    assert not logger.log(object())  # type: ignore[arg-type]
    assert logger.log([])
    stats = logger.stats
    assert (stats.rows_logged, stats.rows_dropped, stats.queued_rows, stats.errors) == (5, 4, 5, 1)
    started = time.monotonic()
    logger.close()
    assert time.monotonic() - started < 10, "close() must wake the worker"
    (path,) = tmp_path.glob("*.bin")
    assert read_profile(path).rows == 5


def test_without_a_time_column_the_clock_stamps_rows_and_ends_intervals(
    july: pd.DataFrame, tmp_path: Path
) -> None:
    records = july.drop(columns="time_hour").to_dict("records")
    now = [datetime(2013, 7, 1, 10, 5, tzinfo=UTC)]
    logger = ProfileLogger(
        tmp_path, timedelta(hours=1), clock=lambda: now[0], max_wait_seconds=0.02
    )
    logger.log(records[:3])
    assert wait_for(lambda: logger.stats.rows_processed == 3)
    ten = tmp_path / "profile-20130701T100000Z.bin"
    assert not ten.exists(), "10:00-11:00 is still open at 10:05"
    now[0] = datetime(2013, 7, 1, 11, 1, tzinfo=UTC)
    # No new row arrives: the clock alone closes the hour.
    assert wait_for(lambda: ten.exists() and read_profile(ten).rows == 3)
    logger.log(records[3:5])
    logger.close()
    assert read_profile(tmp_path / "profile-20130701T110000Z.bin").rows == 2


def test_a_failing_disk_is_counted_not_raised(
    july: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: ProfileBuilder, path: Path) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ProfileBuilder, "write", broken)
    logger = ProfileLogger(tmp_path, DAY, time_column="time_hour")
    assert logger.log(july.head(50))
    logger.close()
    stats = logger.stats
    assert stats.errors >= 1
    assert stats.files_written == 0
    assert stats.rows_processed == 50


def test_a_flushed_interval_stays_open_and_later_rows_extend_it(
    july: pd.DataFrame, tmp_path: Path
) -> None:
    """A replay flushes before each daily check, in the middle of a day: the rest of the
    day extends the builder in memory instead of reading the file back first."""
    first = july["time_hour"].min().floor("D")
    day = july[july["time_hour"].dt.floor("D") == first].sort_values("time_hour", kind="stable")
    morning, evening = day.iloc[: len(day) // 2], day.iloc[len(day) // 2 :]
    logger = ProfileLogger(tmp_path, DAY, time_column="time_hour", max_wait_seconds=0.05)
    logger.log(morning)
    assert logger.flush()
    (path,) = tmp_path.glob("*.bin")
    assert read_profile(path).rows == len(morning)
    # Were the rest of the day to reopen the interval from its file, it would now start
    # from nothing and the file would end up holding the evening alone.
    path.unlink()
    logger.log(evening)
    logger.close()
    assert read_profile(path).rows == len(day)
    assert logger.stats.errors == 0
