"""Fixed time intervals aligned on the Unix epoch (so a day starts at UTC midnight)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

_STAMP = "%Y%m%dT%H%M%SZ"


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_interval(interval: timedelta) -> timedelta:
    if interval <= timedelta(0) or interval % timedelta(seconds=1):
        raise ValueError(f"interval must be a positive whole number of seconds, got {interval}")
    return interval


def interval_start(moment: datetime, interval: timedelta) -> datetime:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // interval) * interval


def interval_starts(times: pd.Series, interval: timedelta) -> pd.Series:
    """Vectorised interval_start for a UTC datetime series (one interval key per row)."""
    step = int(interval.total_seconds()) * 1_000_000_000
    nanos = times.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").astype("int64")
    return pd.to_datetime((nanos // step) * step, utc=True)


def stamp(start: datetime) -> str:
    """The file-name form of an interval start, e.g. 20130701T000000Z."""
    return start.astimezone(UTC).strftime(_STAMP)


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, _STAMP).replace(tzinfo=UTC)
