"""The replay sends each flight at the tick of its prediction time, never later."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from feature_repo.flights import requests
from serving.replay import floor_to, prediction_ticks

LEAD = timedelta(hours=2)


@pytest.mark.parametrize("step_minutes", [15, 60, 24 * 60])
def test_every_flight_is_sent_once_at_the_last_tick_before_its_prediction(step_minutes) -> None:
    step = timedelta(minutes=step_minutes)
    flights = requests.scheduled_flights(date(2013, 6, 1))
    ticks = prediction_ticks(flights, requests.EVENT_TIME_FIELD, LEAD, step)

    sent = [f for due in ticks.values() for f in due]
    assert sorted(map(id, sent)) == sorted(map(id, flights))
    assert list(ticks) == sorted(ticks)
    for tick, due in ticks.items():
        for flight in due:
            predicted_at = datetime.fromisoformat(flight["sched_dep"]) - LEAD
            assert tick <= predicted_at < tick + step
    # Departures in the first two hours of the UTC day are predicted the day before.
    assert min(ticks) < datetime(2013, 6, 1, tzinfo=UTC)


def test_ticks_count_from_the_epoch_whatever_the_offset() -> None:
    local = datetime(2013, 6, 1, 5, 59, tzinfo=timezone(timedelta(hours=-4)))  # 09:59 UTC
    assert floor_to(local, timedelta(hours=1)) == datetime(2013, 6, 1, 9, tzinfo=UTC)
    assert floor_to(datetime(2013, 6, 1, 0, 10, tzinfo=UTC), timedelta(minutes=15)) == datetime(
        2013, 6, 1, tzinfo=UTC
    )
