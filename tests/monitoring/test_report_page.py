"""The HTML drift report, rendered in real headless Chromium (Debian's ``chromium``).

Checked on what the browser made of it: the screenshot is not blank and shows
the plots' colours, the rendered page names the target window's dates and what
is normal for its length, and every column has exactly one plot.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import image

from monitoring.calibration import calibrate_frame
from monitoring.drift import compare
from monitoring.profiles import profile_frame, read_profile
from monitoring.reference import write_reference_profile
from monitoring.report import REFERENCE_COLOR, TARGET_COLOR, render_html, write_html
from tests.monitoring.realdata import WEATHER_COLUMNS

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]
WIDTH, HEIGHT = 1400, 2600


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "headless Chromium is needed: apt-get install -y chromium"
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )


def _share_like(pixels: np.ndarray, colour: str) -> float:
    """Share of pixels of the colour's hue (bars are half-transparent, so blended)."""
    rgb = pixels[..., :3]
    if colour == REFERENCE_COLOR:  # blue: blue well above red
        return float((rgb[..., 2] - rgb[..., 0] > 0.15).mean())
    return float((rgb[..., 0] - rgb[..., 2] > 0.15).mean())  # orange: red well above blue


def test_the_report_renders_with_dates_normal_line_and_one_plot_per_column(
    weather: pd.DataFrame, tmp_path: Path
) -> None:
    frame = weather[[*WEATHER_COLUMNS, "time_hour"]].copy()
    frame["weekday"] = frame["time_hour"].dt.weekday  # a few integers: drawn as bars
    columns = [*WEATHER_COLUMNS, "weekday"]
    january = frame[frame["time_hour"] < datetime(2013, 2, 1, tzinfo=UTC)]
    reference_path = write_reference_profile(
        january, columns, "", None, tmp_path / "ref.bin", time_col="time_hour"
    )
    calibration, _ = calibrate_frame(january, reference_path, time_column="time_hour")
    start = datetime(2013, 7, 8, tzinfo=UTC)
    week = frame[(frame["time_hour"] >= start) & (frame["time_hour"] < start + timedelta(7))]
    target = profile_frame(week[columns], window=(start, start + timedelta(days=7)))
    reference = read_profile(reference_path)
    result = compare(reference, target, calibration=calibration)
    page = write_html(render_html(result, reference, target), tmp_path / "report.html")

    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    text = re.sub(r"<[^>]+>", " ", dom)
    assert "Target window: 2013-07-08 00:00 .. 2013-07-15 00:00 UTC (7 days)" in " ".join(
        text.split()
    )
    assert "normal for 7-day windows" in text
    assert "not judged" in text and "weekday" in text  # the calendar column, found
    for column in columns:
        section = re.search(rf"<section id=\"{column}\">(.*?)</section>", dom, re.S)
        assert section, f"no section for {column}"
        assert section.group(1).count('src="data:image/png;base64,') == 1, column
    assert dom.count('src="data:image/png;base64,') == len(columns) == len(result.columns)

    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri())
    pixels = image.imread(str(shot))
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    assert pixels[..., :3].std() > 0.1, "the page rendered blank"
    top = pixels[:300, :, :3]
    assert top.std() > 0.05, "no header text"
    # Plots were drawn, not just their frames: both sides' colours cover real area.
    assert _share_like(pixels, REFERENCE_COLOR) > 0.01
    assert _share_like(pixels, TARGET_COLOR) > 0.01
