"""Refusing time windows that cannot be meant: reversed, or beyond what exists.

The raw layer is append-only and its watermark never moves back, so an
``ingest --through 2099-12-31`` would stick for good (and the feature build
would then write tens of thousands of empty days). A window's end may not lie
past the source's last event plus a margin, nor past the wall clock; a
window's start may not lie after its end.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

# Room after the source's last event: a late arrival published the next day.
SOURCE_MARGIN = timedelta(days=1)


class WindowRefused(ValueError):
    """A window the command will not run; the message says why and what would be valid."""


def check_through(
    through: date | datetime, last_event: datetime | None, now: datetime | None = None
) -> None:
    """``through`` (a UTC day, inclusive, or an instant) must not pass the source's end
    nor the wall clock."""
    now = now or datetime.now(UTC)
    day = through.date() if isinstance(through, datetime) else through
    if day > now.date() or (isinstance(through, datetime) and _utc(through) > now):
        raise WindowRefused(f"--through {through} is in the future (the wall clock says {now})")
    if last_event is not None:
        limit = (last_event + SOURCE_MARGIN).date()
        if day > limit:
            raise WindowRefused(
                f"--through {through} is past the source's last event ({last_event:%Y-%m-%d %H:%M} "
                f"UTC) plus {SOURCE_MARGIN.days} day; the latest accepted is {limit}"
            )


def check_window(
    start: object, end: object, what: str = "window", *, end_inclusive: bool = False
) -> None:
    """A window's start must come before its end (dates or instants); with
    ``end_inclusive`` (a replay whose end names the last tick's start) it may equal it."""
    if end_inclusive:
        if end < start:  # type: ignore[operator]
            raise WindowRefused(f"{what} is reversed: start {start} is after end {end}")
    elif start >= end:  # type: ignore[operator]
        raise WindowRefused(f"{what} is reversed or empty: start {start} is not before end {end}")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
