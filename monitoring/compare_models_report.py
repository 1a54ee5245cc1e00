"""compare-models for people: a terminal table and a one-file HTML page with the daily plot."""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, datetime

from matplotlib import dates
from matplotlib.figure import Figure
from rich.table import Table

from monitoring.compare_models import AUC_METHODS, BETTER, WORSE, Comparison, SliceComparison
from monitoring.paired import METRICS, PairedMetric

CHAMPION_COLOR = "#4c72b0"
CHALLENGER_COLOR = "#dd8452"
NAMES = {"roc_auc": "ROC-AUC", "log_loss": "log loss", "brier": "Brier"}


def _num(value: float | None, digits: int = 4, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _interval(metric: PairedMetric) -> str:
    if metric.difference is None:
        return "-"
    return (
        f"{_num(metric.difference, sign=True)} "
        f"[{_num(metric.ci_low, sign=True)}, {_num(metric.ci_high, sign=True)}]"
    )


def _rows(result: Comparison) -> list[SliceComparison]:
    return [result.overall, *result.slices]


def comparison_table(result: Comparison) -> Table:
    table = Table(
        title=f"{result.challenger} vs champion {', '.join(result.champions)}: "
        "challenger - champion [95% CI]",
        show_edge=False,
    )
    table.add_column("slice")
    table.add_column("labelled", justify="right")
    table.add_column("ROC-AUC", justify="right", no_wrap=True)
    for metric in METRICS:
        table.add_column(f"{NAMES[metric]} diff", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for part in _rows(result):
        auc = part.metrics["roc_auc"]
        cells = [
            part.slice,
            f"{part.labelled:,}",
            f"{_num(auc.champion)} -> {_num(auc.challenger)}",
        ]
        cells += [_interval(part.metrics[metric]) for metric in METRICS]
        color = {BETTER: "green", WORSE: "red"}.get(part.verdict, "dim")
        cells.append(f"[{color}]{part.verdict}[/{color}]")
        table.add_row(*cells)
    return table


def comparison_summary(result: Comparison) -> str:
    auc = result.overall.metrics["roc_auc"]
    return (
        f"{result.challenger}: {result.verdict} than the champion on "
        f"{result.overall.labelled:,} labelled of {result.overall.flights:,} paired flights; "
        f"ROC-AUC {_interval(auc)}"
    )


def daily_plot(result: Comparison) -> str:
    """PNG (base64) of the daily ROC-AUC and Brier score of both models."""
    figure = Figure(figsize=(9, 5.5), layout="constrained")
    axes = figure.subplots(2, 1, sharex=True)
    days = [datetime.fromisoformat(d.slice) for d in result.daily]
    for ax, metric in zip(axes, ("roc_auc", "brier"), strict=True):
        for side, color in (("champion", CHAMPION_COLOR), ("challenger", CHALLENGER_COLOR)):
            values = [getattr(d.metrics[metric], side) for d in result.daily]
            points = [(x, v) for x, v in zip(days, values, strict=True) if v is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                label = result.challenger if side == "challenger" else "champion"
                ax.plot(xs, ys, marker="o", color=color, label=label)
        ax.set_ylabel(NAMES[metric])
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best")
    axes[0].set_title("per day of prediction, flights with a known outcome")
    axes[1].xaxis.set_major_locator(dates.AutoDateLocator(minticks=2, maxticks=12))
    axes[1].xaxis.set_major_formatter(dates.DateFormatter("%Y-%m-%d"))
    axes[1].tick_params(axis="x", labelrotation=30)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode()


def _html_table(rows: list[SliceComparison]) -> str:
    head = "".join(
        f"<th>{NAMES[m]} champion</th><th>{NAMES[m]} challenger</th>"
        f"<th>{NAMES[m]} diff [95% CI]</th>"
        for m in METRICS
    )
    body = []
    for part in rows:
        cells = "".join(
            f"<td>{_num(part.metrics[m].champion)}</td><td>{_num(part.metrics[m].challenger)}</td>"
            f"<td>{html.escape(_interval(part.metrics[m]))}</td>"
            for m in METRICS
        )
        body.append(
            f"<tr class='{part.verdict.replace(' ', '-')}'><td>{html.escape(part.slice)}</td>"
            f"<td>{part.labelled:,}</td><td>{part.flights:,}</td>{cells}"
            f"<td>{part.verdict}</td></tr>"
        )
    return (
        f"<table><tr><th>slice</th><th>labelled</th><th>paired</th>{head}<th>verdict</th></tr>"
        + "".join(body)
        + "</table>"
    )


def render_html(result: Comparison) -> str:
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>compare-models {html.escape(result.challenger)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 3px 6px; text-align: right; }}
td:first-child {{ text-align: left; }}
tr.better td:last-child {{ color: #2a7a2a; font-weight: bold; }}
tr.worse td:last-child {{ color: #b22222; font-weight: bold; }}
</style></head><body>
<h1>Challenger {html.escape(result.challenger)}: <span id="verdict">{result.verdict}</span></h1>
<p>Champion(s) {html.escape(", ".join(result.champions))}; predictions made in
{result.window[0].isoformat()} .. {result.window[1].isoformat()}, outcomes known at
{result.now.isoformat()}. {result.overall.labelled:,} labelled of
{result.overall.flights:,} flights scored by both. Differences are challenger minus
champion; ROC-AUC's CI: {html.escape(AUC_METHODS[result.ci_unit])} (per day: DeLong's),
log loss and Brier a paired bootstrap over flights ({result.resamples} resamples, seed
{result.seed}). A verdict needs at least
{result.min_labels} labelled flights and a ROC-AUC CI that excludes zero.</p>
<ul>{notes}</ul>
<h2>Daily metrics</h2>
<img alt="daily ROC-AUC and Brier of both models" src="data:image/png;base64,{daily_plot(result)}">
<h2>Overall and per slice</h2>
{_html_table(_rows(result))}
<h2>Per day</h2>
{_html_table(list(result.daily))}
<p><small>written {created}</small></p>
</body></html>
"""
