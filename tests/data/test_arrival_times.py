"""Every 2013 landing, moved to UTC by the raw layer, reads ``arr_time`` again on the
destination's wall clock (the airports table's ``tzone``)."""

from __future__ import annotations

import pandas as pd

from feature_repo.flights.source import (
    TIMEZONE_OVERRIDES,
    build_departures_and_arrivals,
    default_source_dir,
    read_source,
)


def test_every_arrival_lands_at_its_local_arr_time() -> None:
    frames = read_source(default_source_dir())
    flights, airports = frames["flights"], frames["airports"]
    _, arrivals = build_departures_and_arrivals(flights, airports)

    zones = {**airports.dropna(subset=["tzone"]).set_index("faa")["tzone"], **TIMEZONE_OVERRIDES}
    landed = flights.loc[arrivals.index]
    assert len(landed) > 320_000 and arrivals["arr_ts"].notna().all()
    wrong = []
    skipped_total = 0
    for zone, index in landed.groupby(landed["dest"].map(zones)).groups.items():
        local = arrivals.loc[index, "arr_ts"].dt.tz_convert(zone)
        clock = local.dt.hour * 100 + local.dt.minute
        expected = landed.loc[index, "arr_time"].astype("int64") % 2400  # 2400 is midnight
        # A wall time the clock skipped (02:xx when daylight saving starts) cannot be
        # read back; it is taken as read off a clock not yet moved on: an hour later.
        wall = local.dt.tz_localize(None).dt.normalize() + pd.to_timedelta(
            expected // 100 * 60 + expected % 100, unit="m"
        )
        skipped = wall.dt.tz_localize(zone, ambiguous=True, nonexistent="NaT").isna()
        expected = expected.where(~skipped, expected + 100)
        skipped_total += int(skipped.sum())
        wrong += list(landed.loc[index][clock != expected].itertuples())
    assert wrong == [], f"{len(wrong)} landings off their local arr_time: {wrong[:3]}"
    assert skipped_total == 1  # B6 35 JFK-PBI, 02:03 on 2013-03-10

    # The two examples, to the minute.
    by_flight = landed.assign(arr_ts=arrivals["arr_ts"]).set_index(
        ["year", "month", "day", "carrier", "flight", "origin"]
    )["arr_ts"]
    assert by_flight[(2013, 3, 10, "B6", 30, "JFK")] == pd.Timestamp("2013-03-11 03:55Z")
    assert by_flight[(2013, 11, 3, "UA", 371, "EWR")] == pd.Timestamp("2013-11-04 04:58Z")
