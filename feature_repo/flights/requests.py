"""What a caller sends to score a flight, and how it becomes Feast entity rows.

Serving owns the HTTP side; this module owns what a flight *is*: the fields,
their validation, and their mapping onto the feature service's join keys and
request-time fields (``flight_request`` in ``definitions.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Container, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

AirportCode = Annotated[str, StringConstraints(min_length=3, max_length=4, pattern=r"^[A-Z0-9]+$")]
CarrierCode = Annotated[str, StringConstraints(min_length=2, max_length=3, pattern=r"^[A-Z0-9]+$")]


class FlightRequest(BaseModel):
    """One scheduled flight, as known about two hours before departure."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    origin: AirportCode = Field(description="departure airport, FAA code", examples=["EWR"])
    dest: AirportCode = Field(description="destination airport, FAA code", examples=["IAH"])
    carrier: CarrierCode = Field(description="two-letter airline code", examples=["UA"])
    tailnum: str | None = Field(
        default=None,
        max_length=10,
        description="aircraft registration; unknown or absent aircraft are scored with "
        "imputed features and flagged",
        examples=["N14228"],
    )
    sched_dep: AwareDatetime = Field(
        description="scheduled departure, ISO 8601 with a UTC offset (local time of the origin)",
        examples=["2013-06-15T17:45:00-04:00"],
    )
    distance: float = Field(gt=0, le=20000, description="route distance, miles", examples=[1400])
    flight_id: str | None = Field(default=None, max_length=64, description="caller's id, echoed")


ENTITY_COLUMNS = ("origin", "dest", "carrier", "tailnum")
# The request field that says when the predicted event happens; a prediction is
# made ``Settings.prediction_lead`` before it (replays send each request then).
EVENT_TIME_FIELD = "sched_dep"


def feature_rows(flights: Sequence[FlightRequest]) -> dict[str, list[Any]]:
    """Columnar entity rows plus the request-time fields the on-demand views need."""
    sched: list[datetime] = [f.sched_dep for f in flights]
    return {
        "origin": [f.origin for f in flights],
        "dest": [f.dest for f in flights],
        "carrier": [f.carrier for f in flights],
        "tailnum": [f.tailnum or "" for f in flights],
        "sched_dep_epoch": [int(t.timestamp()) for t in sched],
        "sched_dep_utc_offset_min": [_offset_minutes(t) for t in sched],
        "distance": [float(f.distance) for f in flights],
    }


def _offset_minutes(moment: datetime) -> int:
    offset = moment.utcoffset()
    assert offset is not None  # AwareDatetime guarantees it
    return int(offset.total_seconds() // 60)


def request_model(airports: Container[str], carriers: Container[str]) -> type[FlightRequest]:
    """``FlightRequest`` that also rejects airports and carriers the system has never seen."""
    from pydantic import field_validator

    class KnownFlightRequest(FlightRequest):
        @field_validator("origin", "dest")
        @classmethod
        def _known_airport(cls, value: str) -> str:
            if value not in airports:
                raise ValueError(f"unknown airport {value!r}")
            return value

        @field_validator("carrier")
        @classmethod
        def _known_carrier(cls, value: str) -> str:
            if value not in carriers:
                raise ValueError(f"unknown carrier {value!r}")
            return value

    KnownFlightRequest.__name__ = "FlightRequest"
    return KnownFlightRequest


def known_codes(raw_dir: Path) -> tuple[frozenset[str], frozenset[str]]:
    """Airports and carriers from the raw layer's static tables."""
    import pyarrow.parquet as pq

    try:
        airports = pq.read_table(raw_dir / "airports" / "snapshot.parquet", columns=["faa"])
        carriers = pq.read_table(raw_dir / "airlines" / "snapshot.parquet", columns=["carrier"])
    except FileNotFoundError as err:
        raise RuntimeError(f"raw layer has no airports/airlines yet ({err}); run ingest") from None
    return (
        frozenset(airports.column("faa").to_pylist()),
        frozenset(carriers.column("carrier").to_pylist()),
    )


class KnownCodes(Container[str]):
    """Airports or carriers of the raw layer, read at the first lookup rather than at
    import: a service module must import without a data directory (``bentoml build``
    imports it to write the API schema)."""

    def __init__(self, raw_dir: Path, which: int) -> None:
        self.raw_dir = raw_dir
        self.which = which  # 0: airports, 1: carriers (known_codes' order)
        self._codes: frozenset[str] | None = None

    def __contains__(self, code: object) -> bool:
        if self._codes is None:
            self._codes = known_codes(self.raw_dir)[self.which]
        return code in self._codes


def lazy_request_model(raw_dir: Path) -> type[FlightRequest]:
    """:func:`request_model` with the raw layer's codes, read on first validation."""
    return request_model(KnownCodes(raw_dir, 0), KnownCodes(raw_dir, 1))


def scheduled_flights(day: date, source_dir: Path | None = None) -> list[dict[str, Any]]:
    """Requests for every flight scheduled to leave on ``day`` (UTC), from the source schedule.

    Traffic for replays and demos: schedules are known in advance, so they come
    from the source files rather than the raw layer, which only holds flights
    once they have departed.
    """
    from datetime import UTC, timedelta, timezone

    departures = _schedule(source_dir)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    mask = (departures["sched_dep_ts"] >= start) & (
        departures["sched_dep_ts"] < start + timedelta(days=1)
    )
    flights = []
    for row in departures.loc[mask].sort_values("sched_dep_ts").itertuples():
        local = timezone(timedelta(minutes=int(row.sched_dep_utc_offset_min)))
        flights.append(
            {
                "flight_id": row.flight_id,
                "origin": row.origin,
                "dest": row.dest,
                "carrier": row.carrier,
                "tailnum": None if not isinstance(row.tailnum, str) else row.tailnum,
                "sched_dep": row.sched_dep_ts.to_pydatetime().astimezone(local).isoformat(),
                "distance": float(row.distance),
            }
        )
    return flights


@functools.cache
def _schedule(source_dir: Path | None) -> Any:
    from feature_repo.flights.source import load_raw_tables

    return load_raw_tables(source_dir).events["departures"][0]
