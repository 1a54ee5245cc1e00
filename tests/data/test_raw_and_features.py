"""The raw layer's time semantics and the feature SQL, checked against the source data."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from feature_repo.raw_layer import RawLayer
from feature_repo.settings import Settings
from tests.conftest import tree_checksums


@pytest.fixture(scope="module")
def raw_frames(pipeline) -> dict[str, pd.DataFrame]:
    raw = RawLayer(pipeline.settings.raw_dir)
    con = duckdb.connect()
    frames = {}
    for table in ("departures", "arrivals", "weather_observations"):
        files = [str(f) for f in raw.published_files(table)]
        frames[table] = con.execute("SELECT * FROM read_parquet($f)", {"f": files}).fetch_df()
    return frames


def test_nothing_is_published_before_it_is_knowable(pipeline, raw_frames) -> None:
    for table, frame in raw_frames.items():
        knowable = pd.to_datetime(frame["knowable_at"], utc=True)
        assert knowable.max() < pd.Timestamp("2013-03-01", tz="UTC"), table
    arrivals = raw_frames["arrivals"]
    assert (arrivals["knowable_at"] == arrivals["arr_ts"]).all()


def test_arrival_times_are_consistent_with_air_time(raw_frames) -> None:
    flights = raw_frames["departures"].merge(raw_frames["arrivals"], on="flight_id")
    block = (flights["arr_ts"] - flights["dep_ts"]).dt.total_seconds() / 60
    taxi = block - flights["air_time"]
    # Time zones, DST and next-day landings all have to be right for this to hold:
    # block time is air time plus a plausible taxi allowance.
    share_plausible = ((taxi >= 0) & (taxi <= 180)).mean()
    assert share_plausible > 0.995, share_plausible
    red_eyes = flights[flights["sched_arr_ts"].dt.date > flights["sched_dep_ts"].dt.date]
    assert len(red_eyes) > 100


def test_weather_timestamps_are_utc(raw_frames) -> None:
    weather = raw_frames["weather_observations"]
    first = weather.sort_values("observed_at").iloc[0]
    # The first reading of 2013 is 01:00 local (EST), i.e. 06:00 UTC.
    assert first["observed_at"] == pd.Timestamp("2013-01-01 06:00", tz="UTC")


def test_carrier_snapshot_equals_a_recount_from_raw(pipeline, raw_frames) -> None:
    flights = raw_frames["departures"].merge(raw_frames["arrivals"], on="flight_id")
    features = pd.read_parquet(
        pipeline.settings.features_dir / "carrier_perf_7d" / "date=2013-02-15" / "part-0.parquet"
    )
    snapshot = pd.Timestamp("2013-02-15", tz="UTC")
    for _, row in features.iterrows():
        window = flights[
            (flights["carrier"] == row["carrier"])
            & (flights["arr_ts"] >= snapshot - timedelta(days=7))
            & (flights["arr_ts"] < snapshot)
        ]
        assert row["arrivals"] == len(window)
        if len(window):
            assert np.isclose(row["late_share"], (window["arr_delay"] > 15).mean())
            assert np.isclose(row["mean_arr_delay"], window["arr_delay"].mean())


@pytest.mark.parametrize(
    ("table", "keys", "events"),
    [
        ("route_perf_28d", ["origin", "dest"], "arrivals"),
        ("carrier_perf_7d", ["carrier"], "arrivals"),
        ("origin_congestion_3h", ["origin"], "departures"),
    ],
)
def test_no_snapshot_of_an_entity_is_stamped_before_it_was_first_seen(
    pipeline, raw_frames, table: str, keys: list[str], events: str
) -> None:
    """A snapshot stamped at an instant holds only what was knowable then. An entity
    first seen later in the snapshot's period (a new route, a new carrier) has no row
    at that instant: a build after its first event would write one retroactively, that
    point-in-time retrieval returns (0 arrivals) but that the online store, already
    materialized past that instant, never gets (it serves nothing)."""
    flights = raw_frames["departures"].merge(
        raw_frames["arrivals"], on="flight_id", suffixes=("_departure", "")
    )
    knowable = "knowable_at" if events == "arrivals" else "knowable_at_departure"
    first_seen = flights.groupby(keys)[knowable].min().rename("first_seen")
    rows = _read_features(pipeline.settings, table).join(first_seen, on=keys)
    assert rows["first_seen"].notna().all()  # no row for an entity never seen
    early = rows[rows["event_timestamp"] < rows["first_seen"]]
    assert early.empty, early.head().to_string()
    # Not vacuous: some entities appear after others, when snapshots of those exist.
    assert (first_seen > first_seen.min()).any()


def test_incremental_ingest_adds_only_new_days(tmp_path) -> None:
    from feature_repo.pipeline import ingest

    settings = Settings(data_dir=tmp_path)
    first = ingest(settings, date(2013, 1, 10))
    before = tree_checksums(settings.raw_dir)
    second = ingest(settings, date(2013, 1, 20))
    after = tree_checksums(settings.raw_dir)
    # Every file published by the first run is byte-identical after the second.
    changed = [
        p for p, digest in before.items() if after.get(p) != digest and "_watermark" not in p
    ]
    assert changed == []
    assert second.raw.rows["departures"] > 0
    assert "planes" not in second.raw.rows  # static tables are published once
    assert first.raw.rows["departures"] > 0
    again = ingest(settings, date(2013, 1, 20))
    assert again.raw.nothing_new

    incremental = _read_features(settings, "route_perf_28d")
    settings_full = Settings(data_dir=tmp_path / "full")
    ingest(settings_full, date(2013, 1, 20))
    full = _read_features(settings_full, "route_perf_28d")
    pd.testing.assert_frame_equal(incremental, full)


def _read_features(settings: Settings, name: str, every_column: bool = False) -> pd.DataFrame:
    files = sorted((settings.features_dir / name).glob("date=*/part-0.parquet"))
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    order = list(frame.columns) if every_column else list(frame.columns[:3])
    return frame.sort_values(order).reset_index(drop=True)


def _assert_equals_one_full_build(built: Settings, full_dir, through) -> None:
    """Every feature table of ``built`` equals one full build through ``through``."""
    from feature_repo.pipeline import ingest

    full = Settings(data_dir=full_dir)
    ingest(full, through)
    for name in FEATURE_TABLES:
        pd.testing.assert_frame_equal(
            _read_features(built, name, every_column=True),
            _read_features(full, name, every_column=True),
            obj=name,
        )


FEATURE_TABLES = (
    "aircraft_last_flight",
    "carrier_perf_7d",
    "origin_congestion_3h",
    "plane_attributes",
    "route_perf_28d",
    "weather_hourly",
)


def test_daily_builds_that_read_only_recent_days_equal_one_full_build(tmp_path) -> None:
    """Each daily build reads the few raw days its ``-- incremental:`` line names (not the
    whole history), and keeps emitting rows for entities with no recent events."""
    import duckdb as db

    from feature_repo.feature_build import Lookback, published
    from feature_repo.pipeline import feature_builder, ingest

    daily = Settings(data_dir=tmp_path / "daily")
    day, end = date(2013, 1, 5), date(2013, 2, 28)
    ingest(daily, day)
    while day < end:
        day += timedelta(days=1)
        ingest(daily, day)
    _assert_equals_one_full_build(daily, tmp_path / "full", end)

    # The case the key view exists for: routes with no arrival in the 28 days
    # before a snapshot, first seen long before the raw days a daily build reads.
    routes = _read_features(daily, "route_perf_28d")
    first = routes[routes["arrivals"] > 0].groupby(["origin", "dest"])["event_timestamp"].min()
    dormant = routes.join(first.rename("first"), on=["origin", "dest"])
    dormant = dormant[(dormant["arrivals"] == 0) & (dormant["event_timestamp"] > dormant["first"])]
    assert (dormant["event_timestamp"] - dormant["first"]).max() > pd.Timedelta(days=31)

    # And a daily build's raw views really start at its lookback.
    builder = feature_builder(daily)
    sql = (builder.sql_dir / "route_perf_28d.sql").read_text()
    lookback = Lookback.of(sql)
    assert lookback is not None and lookback.raw_days == 30
    con = db.connect()
    con.execute("SET TimeZone = 'UTC'")
    window_start = pd.Timestamp("2013-02-28", tz="UTC").to_pydatetime()
    files = published(builder.raw, builder.raw_tables)
    builder._scope(con, "route_perf_28d", lookback, window_start, files)
    oldest = con.execute("SELECT min(knowable_at) FROM arrivals").fetchone()[0]
    assert oldest.date() >= date(2013, 1, 29)
    assert con.execute("SELECT count(*) FROM previous_keys").fetchone()[0] > 100


def test_intraday_steps_grow_the_open_day_and_equal_one_full_build(tmp_path) -> None:
    """Ingests at irregular instants through several days (as a scheduler would run them):
    the open day's raw partition only ever gains rows, what was published stays as it was,
    each table is rebuilt only when it can change, and the feature tables equal one full
    build through the last instant, every column."""
    from feature_repo.pipeline import feature_builder, ingest, raw_layer
    from feature_repo.raw_layer import KNOWABLE_AT

    stepped = Settings(data_dir=tmp_path / "stepped")
    ingest(stepped, date(2013, 1, 6))
    start = datetime(2013, 1, 7, tzinfo=UTC)
    offsets = [timedelta(0), timedelta(hours=2, minutes=15), timedelta(hours=7, minutes=59)]
    offsets += [
        timedelta(hours=12),
        timedelta(hours=12, seconds=1),
        timedelta(hours=17, minutes=30),
    ]
    instants = [start + timedelta(days=d) + o for d in range(3) for o in offsets]
    instants.append(start + timedelta(days=3, hours=9, minutes=45))
    departures = stepped.raw_dir / "departures"
    previous = datetime(2013, 1, 7, tzinfo=UTC) - timedelta(microseconds=1)
    for instant in instants:
        before = {p: pd.read_parquet(p) for p in departures.glob("date=*/part-0.parquet")}
        result = ingest(stepped, instant)
        assert raw_layer(stepped).published_through() == instant
        assert feature_builder(stepped).published_through() == instant
        for path, rows in before.items():  # published rows first, unchanged
            now = pd.read_parquet(path)
            pd.testing.assert_frame_equal(now.iloc[: len(rows)], rows, obj=str(path))
        published = pd.read_parquet(raw_layer(stepped).partition_path("departures", instant.date()))
        assert published[KNOWABLE_AT].max() <= pd.Timestamp(instant)
        # A daily table is rebuilt only when a midnight passed, an hourly one each hour.
        midnight = datetime.combine(instant.date(), time(0), UTC)
        assert (result.features.rows["route_perf_28d"] > 0) == (previous < midnight)
        hour = instant.replace(minute=0, second=0)
        assert (result.features.rows["origin_congestion_3h"] > 0) == (previous < hour)
        # Event-time tables are rebuilt only when their raw input gained events.
        new = result.raw.rows
        assert (result.features.rows["weather_hourly"] > 0) == (new["weather_observations"] > 0)
        assert (result.features.rows["aircraft_last_flight"] > 0) == (new["arrivals"] > 0)
        previous = instant
    _assert_equals_one_full_build(stepped, tmp_path / "full", instants[-1])
    weather = _read_features(stepped, "weather_hourly")
    assert weather["event_timestamp"].max() == pd.Timestamp(instants[-1]).floor("h")


def test_the_open_day_grows_from_the_frame_written_only_while_the_file_is_that_one(
    tmp_path,
) -> None:
    """A step extends the open day's file from the frame the process wrote last, not a read
    back: the files equal those of steps that read every file back. A file another writer
    put there since is read back instead: one that extended the day further, and one with
    a dead run's row after the watermark (dropped)."""
    import pyarrow as pa

    from feature_repo import raw_layer as raw_module
    from feature_repo.atomic_io import write_parquet
    from feature_repo.pipeline import ingest, raw_layer
    from feature_repo.raw_layer import KNOWABLE_AT

    start = datetime(2013, 1, 7, tzinfo=UTC)
    instants = [start + timedelta(hours=h) for h in (3, 7, 11, 19, 26)]
    kept, read_back = Settings(data_dir=tmp_path / "kept"), Settings(data_dir=tmp_path / "read")
    for settings in (kept, read_back):
        ingest(settings, date(2013, 1, 6), build_features=False)
    for instant in instants:
        ingest(kept, instant, build_features=False)
        raw_module._written.clear()  # this process wrote nothing: every open day is read back
        ingest(read_back, instant, build_features=False)
        assert _raw_files(kept) == _raw_files(read_back)

    # Another process extends the open day: what this one wrote is no longer the file.
    last = instants[-1]
    ingest(kept, last + timedelta(hours=1), build_features=False)
    ours = dict(raw_module._written)
    ingest(kept, last + timedelta(hours=2), build_features=False)
    raw_module._written.clear()
    raw_module._written.update(ours)
    ingest(kept, last + timedelta(hours=3), build_features=False)
    # Another writer leaves a dead run's row after the watermark in the open day's file.
    path = raw_layer(kept).partition_path("departures", last.date())
    rows = pd.read_parquet(path)
    dead = rows.iloc[[-1]].copy()
    dead["flight_id"] = "left-by-a-dead-run"
    dead[KNOWABLE_AT] = pd.Timestamp(last + timedelta(hours=3, minutes=30))
    write_parquet(
        pa.Table.from_pandas(pd.concat([rows, dead], ignore_index=True), preserve_index=False),
        path,
    )
    ingest(kept, last + timedelta(hours=5), build_features=False)
    raw_module._written.clear()
    for hours in (1, 2, 3, 5):
        ingest(read_back, last + timedelta(hours=hours), build_features=False)
    assert "left-by-a-dead-run" not in set(pd.read_parquet(path)["flight_id"])
    assert _raw_files(kept) == _raw_files(read_back)


def _raw_files(settings: Settings) -> dict[str, str]:
    """The raw layer's data files' checksums, by path under it (the watermark's record
    holds the time it was written)."""
    root = str(settings.raw_dir)
    sums = tree_checksums(settings.raw_dir)
    return {p.removeprefix(root): d for p, d in sums.items() if "_watermark" not in p}
