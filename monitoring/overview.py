"""One page for the whole system: ``<data dir>/reports/index.html``.

It links every report the pipelines have written (training, drift, performance,
skew, the serving replay, and any other HTML report under the reports or
monitoring folders, such as the lifecycle), each with its headline figures and a
thumbnail: the report's first plot, or a small plot drawn from its JSON.

It only reads files the pipelines wrote, so it never imports training or serving;
links are relative, so the page survives a moved data directory.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feature_repo.atomic_io import write_text
from feature_repo.settings import Settings
from monitoring import layout

INDEX_NAME = "index.html"
# A report embeds its plots as data URIs; the first one is its thumbnail.
_FIRST_IMAGE = re.compile(r"""<img[^>]*\bsrc=["'](data:image/(?:png|svg\+xml);base64,[^"']+)["']""")
_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
# How many training reports get a card; older ones are listed as links.
TRAINING_CARDS = 4


@dataclass
class Card:
    """One report on the overview page."""

    kind: str
    title: str
    report: Path
    figures: list[tuple[str, str]] = field(default_factory=list)
    verdict: str | None = None  # "pass", "fail" or a stage, shown as a badge
    thumbnail: str | None = None  # a data URI
    extra_links: list[Path] = field(default_factory=list)

    @property
    def updated(self) -> datetime:
        return datetime.fromtimestamp(self.report.stat().st_mtime, UTC)


@dataclass
class Overview:
    cards: list[Card]
    older: list[Path]  # training reports without a card
    champion: str | None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def first_image(report: Path) -> str | None:
    """The first embedded plot of an HTML report, as a data URI."""
    try:
        match = _FIRST_IMAGE.search(report.read_text(errors="replace"))
    except OSError:
        return None
    return match.group(1) if match else None


def _plot(draw: Callable[[Any], None]) -> str:
    """A small PNG drawn by ``draw(axes)``, as a data URI."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2, 2.0), dpi=100)
    try:
        draw(ax)
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _bars(labels: list[str], values: list[float], ylabel: str) -> str:
    def draw(ax: Any) -> None:
        ax.bar(range(len(values)), values, color="#4c78a8")
        ax.set_xticks(range(len(values)), labels, rotation=30, ha="right")
        ax.set_ylabel(ylabel, fontsize=7)

    return _plot(draw)


def _num(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def _verdict(failed: Any) -> str | None:
    return None if failed is None else ("fail" if failed else "pass")


# -- one collector per kind of report ------------------------------------------


def training_cards(settings: Settings, champion: str | None) -> tuple[list[Card], list[Path]]:
    """Every model's training report, newest first; the champion's always has a card."""
    cards = []
    for metrics_path in settings.reports_dir.glob("*/*/metrics.json"):
        data = _read_json(metrics_path) or {}
        report = metrics_path.with_name("report.html")
        metrics = data.get("metrics", {})
        tag = str(
            data.get("tag") or f"{metrics_path.parent.parent.name}:{metrics_path.parent.name}"
        )
        window = data.get("validation_window") or {}
        cards.append(
            Card(
                kind="training",
                title=f"training: {tag}",
                report=report if report.exists() else metrics_path,
                figures=[
                    ("ROC-AUC", _num(metrics.get("roc_auc"))),
                    ("PR-AUC", _num(metrics.get("pr_auc"))),
                    ("Brier", _num(metrics.get("brier"))),
                    ("validation flights", f"{metrics.get('rows', 0):,}"),
                    ("validation", f"{window.get('start', '?')} .. {window.get('end', '?')}"),
                ],
                verdict="champion" if tag == champion else None,
                thumbnail=first_image(report),
                extra_links=[metrics_path] if report.exists() else [],
            )
        )
    cards.sort(key=lambda c: (c.verdict == "champion", c.updated), reverse=True)
    return cards[:TRAINING_CARDS], [c.report for c in cards[TRAINING_CARDS:]]


def drift_card(settings: Settings) -> Card | None:
    folder = layout.drift_dir(settings)
    data = _read_json(folder / "drift.json")
    if data is None:
        return None
    report = folder / "report.html"
    columns = data.get("columns") or []
    return Card(
        kind="drift",
        title="drift: served features vs the training reference",
        report=report if report.exists() else folder / "drift.json",
        figures=[
            ("drifted columns", f"{len(data.get('drifted', []))} of {len(columns)}"),
            ("drift share", f"{data.get('drift_share', 0):.0%}"),
            ("target rows", f"{data.get('target_rows', 0):,}"),
            ("model", str(data.get("model_tag") or "-")),
            *(("reason", str(reason)) for reason in data.get("reasons", [])[:2]),
        ],
        verdict=_verdict(data.get("failed")),
        thumbnail=first_image(report),
        extra_links=[folder / "drift.json"] if report.exists() else [],
    )


def performance_card(settings: Settings) -> Card | None:
    path = layout.performance_dir(settings) / "performance.json"
    data = _read_json(path)
    if data is None:
        return None
    figures: list[tuple[str, str]] = []
    labels: list[str] = []
    values: list[float] = []
    for model in data.get("models", []):
        overall = model.get("overall") or {}
        figures.append((f"{model.get('model_tag', '?')} ROC-AUC", _num(overall.get("roc_auc"))))
        for window in model.get("windows", []):
            if isinstance(window.get("roc_auc"), int | float):
                labels.append(str(window.get("start", ""))[5:10])
                values.append(float(window["roc_auc"]))
    figures += [("reason", str(r)) for r in data.get("reasons", [])[:2]]
    return Card(
        kind="performance",
        title="performance: predictions vs outcomes",
        report=_html_beside(path),
        figures=figures,
        verdict=_verdict(data.get("failed")),
        thumbnail=first_image(_html_beside(path))
        or (_bars(labels[-12:], values[-12:], "ROC-AUC") if values else None),
        extra_links=[path] if _html_beside(path) != path else [],
    )


def skew_card(settings: Settings) -> Card | None:
    path = layout.skew_dir(settings) / "skew.json"
    data = _read_json(path)
    if data is None:
        return None
    columns = sorted(data.get("columns", []), key=lambda c: -c.get("mismatches", 0))[:8]
    return Card(
        kind="skew",
        title="skew: served features vs offline re-fetch",
        report=_html_beside(path),
        figures=[
            ("values compared", f"{data.get('values_compared', 0):,}"),
            ("mismatches", f"{data.get('mismatches', 0):,}"),
            ("mismatch share", f"{data.get('mismatch_share', 0):.2%}"),
            *(("reason", str(r)) for r in data.get("reasons", [])[:2]),
        ],
        verdict=_verdict(data.get("failed")),
        thumbnail=first_image(_html_beside(path))
        or (
            _bars(
                [str(c.get("column", "?"))[-18:] for c in columns],
                [float(c.get("mismatches", 0)) for c in columns],
                "mismatches",
            )
            if columns
            else None
        ),
        extra_links=[path] if _html_beside(path) != path else [],
    )


def serving_card(settings: Settings) -> Card | None:
    path = layout.replay_summary_path(settings)
    data = _read_json(path)
    if data is None:
        return None
    p50, p99 = data.get("latency_ms_p50"), data.get("latency_ms_p99")
    return Card(
        kind="serving",
        title=f"serving replay: {data.get('first_day', '?')}, {data.get('days', '?')} day(s)",
        report=path,
        figures=[
            ("flights", f"{data.get('flights', 0):,}"),
            ("errors", str(data.get("errors", "-"))),
            ("latency p50", f"{_num(p50, 1)} ms"),
            ("latency p99", f"{_num(p99, 1)} ms"),
            ("predicted late", f"{data.get('late_share', 0):.1%}"),
            ("model", str(data.get("model", "-"))),
        ],
        verdict="pass" if data.get("errors") == 0 else "fail",
        thumbnail=_bars(["p50", "p99"], [float(p50 or 0), float(p99 or 0)], "latency (ms)"),
    )


def lifecycle_card(settings: Settings) -> Card | None:
    """The continuous-training loop's timeline (``python -m lifecycle simulate``)."""
    folder = settings.reports_dir / "lifecycle"
    data = _read_json(folder / "summary.json")
    if data is None or not (folder / INDEX_NAME).exists():
        return None
    head = data.get("headline", {})
    figures = [("loop mean ROC-AUC", f"{head.get('loop_mean_roc_auc', float('nan')):.4f}")]
    for arm in data.get("arms", []):
        if arm in head:
            h = head[arm]
            figures.append(
                (
                    f"vs {arm}",
                    f"{h['loop_minus_arm']:+.4f} [{h['ci_low']:+.4f}, {h['ci_high']:+.4f}]",
                )
            )
    decisions = ", ".join(f"{k} {v}" for k, v in data.get("decisions", {}).items())
    figures.append(("decisions", decisions or "none"))
    return Card(
        kind="lifecycle",
        title=f"continuous training {data.get('start')} .. {data.get('end')}",
        report=folder / INDEX_NAME,
        figures=figures,
        thumbnail=first_image(folder / INDEX_NAME),
    )


def _html_beside(json_path: Path) -> Path:
    html_path = json_path.with_name("report.html")
    return html_path if html_path.exists() else json_path


def other_cards(settings: Settings, known: set[Path]) -> list[Card]:
    """Any other HTML report (the lifecycle, and whatever comes next)."""
    cards = []
    for root in (settings.reports_dir, settings.monitoring_dir):
        for path in sorted(root.rglob("*.html")):
            if path.resolve() in known or path.name == INDEX_NAME:
                continue
            text = path.read_text(errors="replace")
            match = _TITLE.search(text)
            name = html.unescape(match.group(1).strip()) if match else path.stem
            kind = path.parent.name
            cards.append(Card(kind=kind, title=name, report=path, thumbnail=first_image(path)))
    return cards


def champion_tag(settings: Settings) -> str | None:
    from monitoring.registry import RegistryLookupError, champion

    try:
        return champion(settings).tag
    except RegistryLookupError:
        return None


def collect(settings: Settings) -> Overview:
    champion = champion_tag(settings)
    training, older = training_cards(settings, champion)
    cards = [
        *training,
        *filter(
            None,
            (
                serving_card(settings),
                drift_card(settings),
                performance_card(settings),
                skew_card(settings),
                lifecycle_card(settings),
            ),
        ),
    ]
    known = {c.report.resolve() for c in cards} | {p.resolve() for p in older}
    cards += other_cards(settings, known)
    return Overview(cards=cards, older=older, champion=champion)


# -- the page ------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; background: #f6f7f9; color: #222; }
h1 { margin-bottom: .2rem; }
.sub { color: #666; margin-top: 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 1rem; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 1rem; }
.card h2 { font-size: 1rem; margin: 0 0 .5rem; }
.card img { width: 100%; max-height: 200px; object-fit: contain; border: 1px solid #eee; }
.card table { border-collapse: collapse; width: 100%; font-size: .85rem; margin: .5rem 0; }
.card td { padding: .1rem .3rem; border-bottom: 1px solid #f0f0f0; }
.card td:last-child { text-align: right; font-variant-numeric: tabular-nums; }
.badge { font-size: .75rem; padding: .1rem .4rem; border-radius: 4px; margin-left: .4rem; }
.pass, .champion { background: #d8f0dd; color: #1b6b2c; }
.fail { background: #fadbd8; color: #9b1c12; }
.kind { color: #888; font-size: .75rem; text-transform: uppercase; letter-spacing: .05em; }
.noplot { height: 80px; color: #aaa; display: flex; align-items: center; justify-content: center; }
"""


def _href(target: Path, page_dir: Path) -> str:
    return html.escape(Path(os.path.relpath(target, page_dir)).as_posix(), quote=True)


def _card_html(card: Card, page_dir: Path) -> str:
    badge = (
        f'<span class="badge {html.escape(card.verdict)}">{html.escape(card.verdict)}</span>'
        if card.verdict
        else ""
    )
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{html.escape(value)}</td></tr>"
        for label, value in card.figures
    )
    picture = (
        f'<img alt="{html.escape(card.title)}" src="{card.thumbnail}">'
        if card.thumbnail
        else '<div class="noplot">no plot</div>'
    )
    links = " · ".join(
        f'<a href="{_href(path, page_dir)}">{html.escape(path.name)}</a>'
        for path in card.extra_links
    )
    return (
        f'<div class="card"><div class="kind">{html.escape(card.kind)}</div>'
        f'<h2><a href="{_href(card.report, page_dir)}">{html.escape(card.title)}</a>{badge}</h2>'
        f'<a href="{_href(card.report, page_dir)}">{picture}</a>'
        f"<table>{rows}</table>"
        f'<div class="kind">updated {card.updated:%Y-%m-%d %H:%M} UTC'
        f"{' · ' + links if links else ''}</div></div>"
    )


def render(overview: Overview, page_dir: Path) -> str:
    cards = "\n".join(_card_html(card, page_dir) for card in overview.cards)
    older = "".join(
        f'<li><a href="{_href(path, page_dir)}">{html.escape(path.parent.name)}</a></li>'
        for path in overview.older
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>feastline overview</title>"
        f"<style>{_STYLE}</style></head><body><h1>feastline overview</h1>"
        f'<p class="sub">champion: {html.escape(overview.champion or "none")} · '
        f"{len(overview.cards)} reports · generated "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>"
        f'<div class="grid">{cards or "<p>no reports yet: run <code>make run</code></p>"}</div>'
        + (f"<h2>older training reports</h2><ul>{older}</ul>" if older else "")
        + "</body></html>\n"
    )


def write_overview(settings: Settings) -> tuple[Path, Overview]:
    overview = collect(settings)
    path = settings.reports_dir / INDEX_NAME
    write_text(render(overview, path.parent), path)
    return path, overview


# -- the console summary at the end of `make run` --------------------------------


def _shown(path: Path) -> str:
    """A path as people type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _built(settings: Settings) -> str:
    from feature_repo.pipeline import raw_layer
    from feature_repo.state_files import MaterializationState

    parts = []
    raw_through = raw_layer(settings).watermark()
    parts.append(f"raw data through {raw_through or '(none)'}")
    state = MaterializationState(settings)
    marks = [m for m in (state.watermark(view) for view in state.views()) if m is not None]
    online = f"{max(marks):%Y-%m-%d %H:%M} UTC" if marks else "(never materialized)"
    parts.append(f"online store ({settings.online_store_kind}) through {online}")
    return "; ".join(parts)


def summary_lines(settings: Settings, overview: Overview, page: Path) -> list[str]:
    """What was built, the model, serving, drift and where the reports are: a dozen lines."""
    lines = [f"built:    {_built(settings)}"]
    by_kind: dict[str, Card] = {}
    for card in overview.cards:
        by_kind.setdefault(card.kind, card)
    training = next((c for c in overview.cards if c.verdict == "champion"), None)
    training = training or by_kind.get("training")
    if training is not None:
        figures = dict(training.figures)
        data = _read_json(training.report.with_name("metrics.json")) or {}
        trainset = data.get("training_set") or {}
        if trainset:
            window = trainset.get("window", {})
            lines.append(
                f"          training set {trainset.get('rows', 0):,} rows "
                f"({window.get('start', '?')} .. {window.get('end', '?')})"
            )
        lines.append(
            f"model:    {training.title.removeprefix('training: ')}"
            f" ({training.verdict or 'candidate'}): ROC-AUC {figures['ROC-AUC']}, "
            f"PR-AUC {figures['PR-AUC']}, Brier {figures['Brier']} on "
            f"{figures['validation flights']} validation flights"
        )
    else:
        lines.append("model:    none trained yet")
    if (serving := by_kind.get("serving")) is not None:
        f = dict(serving.figures)
        lines.append(
            f"serving:  {f['flights']} flights, {f['errors']} errors; "
            f"latency p50 {f['latency p50']}, p99 {f['latency p99']}"
        )
    if (drift := by_kind.get("drift")) is not None:
        f = dict(drift.figures)
        detail = f.get("reason") or f"{f['drifted columns']} columns drifted"
        lines.append(f"drift:    {(drift.verdict or '?').upper()}: {detail}")
    lines.append(f"reports:  {_shown(page)} (overview of all {len(overview.cards)})")
    for card in overview.cards:
        lines.append(f"          {card.kind:<12} {_shown(card.report)}")
    return lines
