"""The overview page: every report linked with its figures, rendered in a real browser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from PIL import Image, ImageStat

from feature_repo.settings import Settings
from monitoring import layout
from monitoring.drift import compare
from monitoring.overview import summary_lines, write_overview
from monitoring.profiles import Profile
from monitoring.report import render_html, write_drift_json, write_html

# Debian's package, Ubuntu's name for it, or the Google Chrome of GitHub's runners.
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str:
    for name in (os.environ.get("FEASTLINE_CHROMIUM"), *BROWSERS):
        if name and (found := shutil.which(name)):
            return found
    raise RuntimeError("no headless browser: apt-get install -y chromium (.ci/run does)")


def screenshot(page: Path, out: Path, profile_dir: Path) -> Image.Image:
    subprocess.run(
        [
            browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile_dir}",
            "--window-size=1280,1000",
            f"--screenshot={out}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return Image.open(out).convert("RGB")


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(str(values["href"]))
        if tag == "img" and str(values.get("src", "")).startswith("data:image/png;base64,"):
            self.images += 1


def _training_report(settings: Settings, version: str) -> None:
    """What training writes per model: metrics.json and a report with embedded plots."""
    import base64
    import io

    from matplotlib.figure import Figure

    folder = settings.reports_dir / "flight_delay" / version
    folder.mkdir(parents=True)
    figure = Figure(figsize=(4, 3))
    figure.add_subplot().plot([0, 0.2, 1], [0, 0.7, 1])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    png = base64.b64encode(buffer.getvalue()).decode()
    (folder / "report.html").write_text(
        f'<html><body><h1>{version}</h1><img alt="roc" src="data:image/png;base64,{png}">'
        "</body></html>"
    )
    metrics = {"roc_auc": 0.7757, "pr_auc": 0.538, "brier": 0.1391, "rows": 27915}
    (folder / "metrics.json").write_text(
        json.dumps(
            {
                "tag": f"flight_delay:{version}",
                "metrics": metrics,
                "validation_window": {"start": "2013-05-01", "end": "2013-05-31"},
                "training_set": {"rows": 133311, "window": {"start": "2013-01-01"}},
            }
        )
    )


@pytest.fixture
def data_dir(tmp_path: Path, weather_jan: Profile, weather_jul: Profile) -> Settings:
    """A data directory with a training report, a real drift report, a replay summary
    and a report the overview knows nothing about (as the lifecycle report would be)."""
    settings = Settings(data_dir=tmp_path / "data")
    _training_report(settings, "v1")
    result = compare(weather_jan, weather_jul)
    drift = layout.drift_dir(settings)
    write_html(render_html(result, weather_jan, weather_jul), drift / "report.html")
    write_drift_json(result, drift / "drift.json", model_tag="flight_delay:v1")
    replay = layout.replay_summary_path(settings)
    replay.parent.mkdir(parents=True)
    replay.write_text(
        json.dumps({"flights": 2651, "errors": 0, "latency_ms_p50": 8.0, "latency_ms_p99": 20.4})
    )
    lifecycle = settings.reports_dir / "lifecycle" / "report.html"
    lifecycle.parent.mkdir(parents=True)
    lifecycle.write_text("<html><head><title>model lifecycle</title></head><body>x</body></html>")
    return settings


def test_every_report_is_linked_with_its_figures(data_dir: Settings) -> None:
    page, overview = write_overview(data_dir)
    assert page == data_dir.reports_dir / "index.html"
    assert [card.kind for card in overview.cards] == ["training", "serving", "drift", "lifecycle"]
    text = page.read_text()
    for figure in ("0.7757", "20.4 ms", "model lifecycle", "drifted columns"):
        assert figure in text
    parser = Links()
    parser.feed(text)
    # Every card links its report; each report's own plot (or a drawn one) is its thumbnail.
    assert parser.images == 3
    targets = {(page.parent / unquote(urlparse(href).path)).resolve() for href in parser.hrefs}
    assert all(target.is_file() for target in targets), targets
    assert (data_dir.monitoring_dir / "drift" / "report.html").resolve() in targets
    assert (data_dir.reports_dir / "lifecycle" / "report.html").resolve() in targets
    # Relative links: the page survives a moved data directory.
    assert not any(href.startswith(("/", "file:")) for href in parser.hrefs)


def test_summary_names_the_model_the_verdict_and_the_reports(data_dir: Settings) -> None:
    page, overview = write_overview(data_dir)
    lines = summary_lines(data_dir, overview, page)
    text = "\n".join(lines)
    assert "flight_delay:v1" in text and "ROC-AUC 0.7757" in text
    assert "p50 8.0 ms, p99 20.4 ms" in text
    assert "drift:    FAIL" in text  # January against July weather drifts
    assert str(page) in text or "index.html" in text
    assert len(lines) <= 15


@pytest.mark.integration
def test_the_page_renders_in_a_headless_browser(data_dir: Settings, tmp_path: Path) -> None:
    page, _ = write_overview(data_dir)
    image = screenshot(page, tmp_path / "overview.png", tmp_path / "chromium-profile")
    assert image.size == (1280, 1000)
    # Not blank: cards, text and plots draw many colours and a spread of brightness.
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 200
    assert max(ImageStat.Stat(image).stddev) > 20
    # The page's background is light, and the top-left card holds a plot (dark pixels).
    gray = image.convert("L")
    dark = sum(gray.histogram()[:100])
    assert dark > 0.002 * image.size[0] * image.size[1]
