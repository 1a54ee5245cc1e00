"""Feast objects for the flight-delay example: entities, sources, views, service.

``feast apply`` run from ``feature_repo/`` reads this file (``.feastignore``
hides the pipeline's other modules). Source paths are absolute, resolved
from the configured data directory rather than the working directory,
because the DuckDB offline store reads relative paths from the current
directory, not the repo.

TTLs say how long a value stays a fair description of "now" in offline
(point-in-time) retrieval:

- weather is observed hourly; a reading older than 2 hours is missing, not current;
- congestion snapshots are hourly, carrier and route snapshots daily; a TTL is the
  period plus a grace (30 min; a day for daily ones: the offline store's TTL takes
  one time unit, whole days or seconds), so the snapshot in the online store stays
  valid until the scheduled step (every 15 min) brings the next one. Offline, the
  newest snapshot is always less than one period old, so no training value changes;
- an aircraft's last landing stops being informative after 2 days on the ground;
- plane attributes never expire.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String
from feast.value_type import ValueType

from feature_repo.flights import FEATURE_SERVICE_NAME
from feature_repo.settings import Settings

_settings = Settings.from_env()
_features_dir = _settings.features_dir


def _source(name: str) -> Any:
    if _settings.engine == "spark":
        return _spark_source(name)
    return FileSource(
        name=f"{name}_source",
        path=str(_features_dir / name / "date=*" / "part-0.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
        description=f"feature_repo/flights/sql/{name}.sql, partitioned by event day",
    )


def _spark_source(name: str) -> Any:
    """The same table for Feast's Spark offline store (FEASTLINE_ENGINE=spark): the
    table's folder, its ``date=`` partitions pruned by Feast to the days a query needs."""
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

    return SparkSource(
        name=f"{name}_source",
        path=str(_features_dir / name),
        file_format="parquet",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
        date_partition_column="date",
        date_partition_column_format="%Y-%m-%d",
        description=f"feature_repo/flights/sql/{name}.sql, partitioned by event day",
    )


origin = Entity(
    name="origin",
    join_keys=["origin"],
    value_type=ValueType.STRING,
    description="Departure airport (FAA code)",
)
dest = Entity(
    name="dest",
    join_keys=["dest"],
    value_type=ValueType.STRING,
    description="Destination airport (FAA code)",
)
carrier = Entity(
    name="carrier",
    join_keys=["carrier"],
    value_type=ValueType.STRING,
    description="Two-letter airline code",
)
tailnum = Entity(
    name="tailnum",
    join_keys=["tailnum"],
    value_type=ValueType.STRING,
    description="Aircraft registration",
)

SOURCE_TS = Field(
    name="source_ts",
    dtype=Int64,
    description="Newest raw input behind the value (epoch s); audit only",
)

weather_hourly = FeatureView(
    name="weather_hourly",
    entities=[origin],
    ttl=timedelta(hours=2),
    schema=[
        Field(name="temp_f", dtype=Float64),
        Field(name="dewpoint_f", dtype=Float64),
        Field(name="humidity_pct", dtype=Float64),
        Field(name="wind_speed_mph", dtype=Float64),
        Field(name="wind_gust_mph", dtype=Float64),
        Field(name="precip_in", dtype=Float64),
        Field(name="pressure_mb", dtype=Float64),
        Field(name="visibility_mi", dtype=Float64),
        SOURCE_TS,
    ],
    source=_source("weather_hourly"),
    online=True,
    tags={"freshness": "hourly"},
)

plane_attributes = FeatureView(
    name="plane_attributes",
    entities=[tailnum],
    ttl=timedelta(0),
    schema=[
        Field(name="year_built", dtype=Float64),
        Field(name="seats", dtype=Float64),
        Field(name="engines", dtype=Float64),
        Field(name="plane_type", dtype=String),
        Field(name="engine_type", dtype=String),
        SOURCE_TS,
    ],
    source=_source("plane_attributes"),
    online=True,
    tags={"freshness": "static"},
)

_trailing_schema = [
    Field(name="arrivals", dtype=Int64),
    Field(name="late_share", dtype=Float64),
    Field(name="mean_arr_delay", dtype=Float64),
    SOURCE_TS,
]

carrier_perf_7d = FeatureView(
    name="carrier_perf_7d",
    entities=[carrier],
    ttl=timedelta(days=2),
    schema=list(_trailing_schema),
    source=_source("carrier_perf_7d"),
    online=True,
    tags={"freshness": "daily"},
)

route_perf_28d = FeatureView(
    name="route_perf_28d",
    entities=[origin, dest],
    ttl=timedelta(days=2),
    schema=list(_trailing_schema),
    source=_source("route_perf_28d"),
    online=True,
    tags={"freshness": "daily"},
)

origin_congestion_3h = FeatureView(
    name="origin_congestion_3h",
    entities=[origin],
    ttl=timedelta(hours=1, minutes=30),
    schema=[
        Field(name="departures", dtype=Int64),
        Field(name="cancellations", dtype=Int64),
        Field(name="mean_dep_delay", dtype=Float64),
        SOURCE_TS,
    ],
    source=_source("origin_congestion_3h"),
    online=True,
    tags={"freshness": "hourly"},
)

aircraft_last_flight = FeatureView(
    name="aircraft_last_flight",
    entities=[tailnum],
    ttl=timedelta(days=2),
    schema=[
        Field(name="arr_delay", dtype=Float64),
        Field(name="landed_at_epoch", dtype=Int64),
        SOURCE_TS,
    ],
    source=_source("aircraft_last_flight"),
    online=True,
    tags={"freshness": "per landing"},
)

flight_request = RequestSource(
    name="flight_request",
    schema=[
        Field(name="sched_dep_epoch", dtype=Int64),
        Field(name="sched_dep_utc_offset_min", dtype=Int64),
        Field(name="distance", dtype=Float64),
    ],
    description="What the caller knows about the flight at prediction time",
)


@on_demand_feature_view(
    sources=[flight_request],
    schema=[
        Field(name="sched_hour", dtype=Int64),
        Field(name="sched_weekday", dtype=Int64),
        Field(name="sched_month", dtype=Int64),
        Field(name="distance_miles", dtype=Float64),
    ],
    mode="python",
)
def flight_request_features(inputs: dict[str, Any]) -> dict[str, Any]:
    """Local-clock schedule features.

    Python mode, not pandas: pandas mode costs milliseconds per online call.
    Pure integer arithmetic keeps it fast and free of time-zone libraries:
    the caller passes the local UTC offset, so local time is ``epoch + offset``.
    Feast stores this function's source and runs it elsewhere, so it must be
    self-contained: no module-level helpers.
    """

    def month_of(days_since_epoch: int) -> int:
        # Howard Hinnant's civil_from_days, month only.
        z = days_since_epoch + 719468
        doe = z - (z // 146097) * 146097
        yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
        doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
        mp = (5 * doy + 2) // 153
        return mp + 3 if mp < 10 else mp - 9

    hours, weekdays, months, distances = [], [], [], []
    for epoch, offset, distance in zip(
        inputs["sched_dep_epoch"],
        inputs["sched_dep_utc_offset_min"],
        inputs["distance"],
        strict=True,
    ):
        local = int(epoch) + int(offset) * 60
        days = local // 86400
        hours.append((local % 86400) // 3600)
        weekdays.append((days + 3) % 7)  # 1970-01-01 was a Thursday; Monday is 0
        months.append(month_of(days))
        distances.append(float(distance))
    return {
        "sched_hour": hours,
        "sched_weekday": weekdays,
        "sched_month": months,
        "distance_miles": distances,
    }


@on_demand_feature_view(
    sources=[flight_request, aircraft_last_flight[["landed_at_epoch"]]],
    schema=[Field(name="hours_since_landed", dtype=Float64)],
    mode="python",
)
def aircraft_turnaround(inputs: dict[str, Any]) -> dict[str, Any]:
    """Hours between the aircraft's last landing and this flight's scheduled departure.

    A separate view from the schedule features, because it depends on a feature
    view with a TTL: when that input is stale, only this value is.
    """
    slack = []
    for epoch, landed in zip(inputs["sched_dep_epoch"], inputs["landed_at_epoch"], strict=True):
        slack.append(None if landed is None else (int(epoch) - int(landed)) / 3600.0)
    return {"hours_since_landed": slack}


flight_delay_v1 = FeatureService(
    name=FEATURE_SERVICE_NAME,
    features=[
        weather_hourly[
            [
                "temp_f",
                "dewpoint_f",
                "humidity_pct",
                "wind_speed_mph",
                "wind_gust_mph",
                "precip_in",
                "pressure_mb",
                "visibility_mi",
            ]
        ],
        plane_attributes[["year_built", "seats", "engines", "plane_type", "engine_type"]],
        carrier_perf_7d[["arrivals", "late_share", "mean_arr_delay"]],
        route_perf_28d[["arrivals", "late_share", "mean_arr_delay"]],
        origin_congestion_3h[["departures", "cancellations", "mean_dep_delay"]],
        aircraft_last_flight[["arr_delay"]],
        flight_request_features,
        aircraft_turnaround,
    ],
    description="Late-arrival model inputs; shared by training and serving",
    tags={"label": "arr_delay > 15 min", "version": "1"},
)

FEATURE_VIEWS = [
    weather_hourly,
    plane_attributes,
    carrier_perf_7d,
    route_perf_28d,
    origin_congestion_3h,
    aircraft_last_flight,
]
ENTITIES = [origin, dest, carrier, tailnum]
