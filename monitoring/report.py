"""Drift results for people and machines: a terminal table, drift.json, report.html.

The HTML report is a single file (plots are PNGs embedded as base64) so it can
be mailed, attached to a CI run or opened from a cron host without a server.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from rich.table import Table

from feature_repo.atomic_io import write_json, write_text
from monitoring import histograms
from monitoring.drift import ColumnDrift, DriftResult
from monitoring.histograms import Histogram
from monitoring.profiles import Profile

if TYPE_CHECKING:
    from monitoring.performance import PerformanceResult
    from monitoring.skew import SkewResult

REFERENCE_COLOR = "#4c72b0"
TARGET_COLOR = "#dd8452"
_PLOT_BINS = 40
_FEW_VALUES = 31


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pvalue(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"


def ordered(result: DriftResult) -> list[ColumnDrift]:
    """The prediction first, then drifted columns, then by PSI, largest first."""
    return sorted(
        result.columns,
        key=lambda c: (c.role != "prediction", not c.drifted, not c.judged, -(c.psi or 0.0),
                       c.column),
    )  # fmt: skip


def _whylogs_cell(column: ColumnDrift) -> str:
    wl = column.whylogs
    if wl is None:
        return "-"
    return f"{wl.algorithm} p={_pvalue(wl.pvalue)}"


def _verdict_text(column: ColumnDrift) -> str:
    if not column.judged:
        return "not judged"
    if column.severe:
        return "SEVERE"
    return "DRIFT" if column.drifted else "ok"


def _importance(column: ColumnDrift) -> str:
    return "-" if column.importance is None else f"{column.importance:.4f}"


def drift_table(result: DriftResult, title: str | None = None, limit: int | None = None) -> Table:
    """The verdict per column; JS and whylogs' tests are in drift.json and the HTML report.
    The most drifted columns come first; only the first ``limit`` of them if given."""
    table = Table(title=title or window_title(result), show_edge=False)
    table.add_column("column", overflow="fold")
    table.add_column("importance", justify="right")
    table.add_column("PSI", justify="right")
    table.add_column("normal up to", justify="right")
    table.add_column("outside ref", justify="right")
    table.add_column("nulls ref→target", justify="right")
    table.add_column("verdict")
    table.add_column("why", overflow="fold", ratio=1)
    rows = ordered(result)
    if limit is not None and len(rows) > limit:
        table.caption = f"{len(rows) - limit} more columns, less drifted (-v lists all)"
        rows = rows[:limit]
    for c in rows:
        verdict = _verdict_text(c)
        style = {"SEVERE": "bold red", "DRIFT": "red", "ok": "green"}.get(verdict, "dim")
        name = c.column + (" [bold](prediction)[/bold]" if c.role == "prediction" else "")
        if c.column in result.policy.critical:
            name += " (critical)"
        why = "; ".join(c.criteria) or c.note
        table.add_row(
            name,
            _importance(c),
            _num(c.psi),
            _num(c.thresholds.get("psi")) if c.judged else "-",
            "-" if c.novel is None else f"{c.novel:.1%}",
            f"{c.reference_null_share:.1%}→{c.target_null_share:.1%}",
            f"[{style}]{verdict}[/{style}]",
            f"[dim]{why}[/dim]" if why else "",
        )
    return table


def _window_text(window: tuple[datetime | None, datetime | None]) -> str:
    start, end = window
    if start is None or end is None:
        return "unknown (the profiles carry no window)"
    days = (end - start).total_seconds() / 86400
    return f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC ({days:.3g} days)"


def window_title(result: DriftResult) -> str:
    return (
        f"drift: target {_window_text(result.target_window)} vs reference "
        f"{_window_text(result.reference_window)}"
    )


def prediction_line(result: DriftResult) -> str:
    """The model's output on its own line: the drift that matters most."""
    p = result.prediction
    if p is None:
        return "prediction: not in both profiles"
    verdict = "DRIFT: " + "; ".join(p.criteria) if p.drifted else "ok"
    normal = f" ({p.normal})" if p.normal else ""
    return f"prediction ({p.column}): PSI {_num(p.psi)}{normal}; {verdict}"


def weighted_line(result: DriftResult) -> str:
    weighted = result.weighted_share
    if weighted is None:
        return "importance-weighted drift: no permutation importance in the reference"
    return (
        f"importance-weighted drift: drifted features carry {weighted:.0%} of the model's "
        f"permutation importance (fails above {result.policy.max_weighted_share:.0%})"
    )


def summary_line(result: DriftResult) -> str:
    verdict = "FAIL: " + "; ".join(result.reasons) if result.failed else "pass"
    weighted = result.weighted_share
    weight = "" if weighted is None else f", {weighted:.0%} of importance"
    prediction = result.prediction
    moved = ""
    if prediction is not None:
        moved = f"; prediction {'DRIFT' if prediction.drifted else 'ok'}"
    return (
        f"drift: {len(result.drifted_features)} of {len(result.features)} features drifted "
        f"({result.drift_share:.0%}{weight}){moved}, {result.reference_rows:,} reference rows vs "
        f"{result.target_rows:,} target rows; policy {verdict}"
    )


def write_drift_json(result: DriftResult, path: Path, **extra: object) -> Path:
    write_json({**result.to_dict(), **extra}, path)
    return path


def performance_table(result: PerformanceResult) -> Table:
    """One row per model and window, the whole span last, validation alongside."""
    table = Table(
        title=f"performance: {result.window[0]:%Y-%m-%d %H:%M} .. {result.window[1]:%Y-%m-%d %H:%M}"
        f" UTC, outcomes known at {result.now.isoformat(timespec='minutes')}",
        show_edge=False,
    )
    for name in ("model", "window", "predictions", "labelled", "late share", "ROC-AUC"):
        table.add_column(name, justify="left" if name in ("model", "window") else "right")
    table.add_column("precision", justify="right")
    table.add_column("recall", justify="right")
    table.add_column("verdict")
    margin = result.policy.margin
    for model in result.models:
        v = model.validation
        table.add_row(
            model.model_tag,
            "[dim]validation[/dim]",
            "",
            "",
            "",
            f"[dim]{_num(v.get('roc_auc'))}[/dim]",
            f"[dim]{_num(v.get('precision'))}[/dim]",
            f"[dim]{_num(v.get('recall'))}[/dim]",
            f"[dim]threshold {model.threshold:.3f}, margin {margin:g}[/dim]",
        )
        for w in (*model.windows, model.overall):
            if not w.judged:
                verdict = f"[dim]not judged (< {result.policy.min_labels} labels)[/dim]"
            elif w.degraded:
                verdict = "[red]DEGRADED[/red] " + ", ".join(w.degraded)
            else:
                verdict = "[green]ok[/green]"
            cells = []
            for metric in ("roc_auc", "precision", "recall"):
                text = _num(getattr(w, metric))
                cells.append(f"[red]{text}[/red]" if metric in w.degraded else text)
            table.add_row(
                "",
                f"[bold]{w.label}[/bold]" if w.label == "all" else w.label,
                f"{w.predictions:,}",
                f"{w.labelled:,}",
                "-" if w.positive_rate is None else f"{w.positive_rate:.1%}",
                *cells,
                verdict,
            )
    return table


def performance_summary(result: PerformanceResult) -> str:
    if not result.models:
        return "performance: no predictions in the window"
    parts = []
    for m in result.models:
        o = m.overall
        parts.append(
            f"{m.model_tag}: {o.labelled:,} of {o.predictions:,} predictions labelled, "
            f"ROC-AUC {_num(o.roc_auc)} (validation {_num(m.validation.get('roc_auc'))})"
        )
    verdict = "DEGRADED: " + "; ".join(result.reasons) if result.failed else "within margin"
    return "performance: " + "; ".join(parts) + f"; {verdict}"


def skew_table(result: SkewResult) -> Table:
    table = Table(
        title=f"skew: {result.sampled_rows:,} served rows re-fetched from the offline store",
        show_edge=False,
    )
    table.add_column("feature", overflow="fold")
    table.add_column("compared", justify="right")
    table.add_column("differ", justify="right")
    table.add_column("served missing only", justify="right")
    table.add_column("offline missing only", justify="right")
    table.add_column("max |diff|", justify="right")
    table.add_column("example (served vs offline)")
    for c in sorted(result.columns, key=lambda c: (-c.mismatches, c.column)):
        example = ""
        if c.examples:
            e = c.examples[0]
            example = f"{e.get('flight_id')}: {e['served']!r} vs {e['offline']!r}"
        table.add_row(
            c.column,
            f"{c.compared:,}",
            f"[red]{c.mismatches:,}[/red]" if c.mismatches else "0",
            f"{c.served_missing_only:,}",
            f"{c.offline_missing_only:,}",
            "-" if c.max_abs_diff is None else f"{c.max_abs_diff:.4g}",
            example,
        )
    return table


def skew_summary(result: SkewResult) -> str:
    verdict = "FAIL: " + "; ".join(result.reasons) if result.failed else "pass"
    return (
        f"skew: {result.mismatches:,} of {result.values_compared:,} values differ "
        f"({result.mismatch_share:.2%}) in {result.rows_with_mismatch:,} of "
        f"{result.sampled_rows:,} sampled rows ({result.available_rows:,} served in the window); "
        f"{verdict}"
    )


# -- plots -----------------------------------------------------------------
def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _few_integers(histogram: Histogram | None) -> bool:
    """An integer column with few values (weekday, hour, engines): bars per value."""
    if histogram is None or histogram.kind != "numeric":
        return False
    return len(histogram.keys) <= _FEW_VALUES and all(float(k).is_integer() for k in histogram.keys)


def _value_bars(axes: Axes, reference: Histogram, target: Histogram) -> None:
    values = sorted(set(reference.keys) | set(target.keys))
    positions = list(range(len(values)))
    for histogram, color, name, shift in (
        (reference, REFERENCE_COLOR, "reference", -0.2),
        (target, TARGET_COLOR, "target", 0.2),
    ):
        counts = dict(zip(histogram.keys, histogram.counts, strict=True))
        shares = [counts.get(v, 0) / histogram.total if histogram.total else 0.0 for v in values]
        axes.bar([p + shift for p in positions], shares, width=0.4, color=color, label=name)
    axes.set_xticks(positions, [str(int(v)) for v in values], fontsize=9)
    axes.set_ylabel("share of rows")


def _grid_shares(histogram: Histogram, edges: list[float]) -> list[float]:
    return histograms.pmf(histogram, edges)[1:-1]


def _numeric_plot(axes: Axes, reference: Profile, target: Profile, column: str) -> None:
    # A finer, evenly spaced grid than the PSI bins: this is for the eye.
    ref_hist, tgt_hist = reference.histogram(column), target.histogram(column)
    exact = ref_hist is not None and tgt_hist is not None
    if ref_hist is not None and tgt_hist is not None:  # (exact, spelled out for mypy)
        lows = [histograms.quantiles(h, [0.005])[0] for h in (ref_hist, tgt_hist)]
        highs = [histograms.quantiles(h, [0.995])[0] for h in (ref_hist, tgt_hist)]
    else:
        lows = [p.quantiles(column, [0.005])[0] for p in (reference, target)]
        highs = [p.quantiles(column, [0.995])[0] for p in (reference, target)]
    low, high = min(lows), max(highs)
    if high <= low:
        high = low + 1.0
    step = (high - low) / _PLOT_BINS
    # Right-closed bins: start just below ``low`` so that values equal to it show.
    edges = [math.nextafter(low, -math.inf)] + [low + i * step for i in range(1, _PLOT_BINS + 1)]
    centers = [low + (i + 0.5) * step for i in range(_PLOT_BINS)]
    sides = (
        (reference, ref_hist, REFERENCE_COLOR, "reference"),
        (target, tgt_hist, TARGET_COLOR, "target"),
    )
    for profile, histogram, color, name in sides:
        if exact and histogram is not None:
            shares = _grid_shares(histogram, edges)
        else:
            shares = profile.pmf(column, edges)[1:-1]
        axes.bar(centers, shares, width=step, alpha=0.5, color=color, label=name)
    axes.set_ylabel("share of non-null values")


def _binned_plot(axes: Axes, column: ColumnDrift) -> None:
    binned = column.binned
    assert binned is not None
    positions = list(range(len(binned.labels)))
    up = [p - 0.2 for p in positions]
    down = [p + 0.2 for p in positions]
    axes.barh(up, binned.reference, height=0.4, color=REFERENCE_COLOR, label="reference")
    axes.barh(down, binned.target, height=0.4, color=TARGET_COLOR, label="target")
    axes.set_yticks(positions, binned.labels, fontsize=9)
    axes.invert_yaxis()
    axes.set_xlabel("share of rows")


def column_plot(column: ColumnDrift, reference: Profile, target: Profile) -> str | None:
    """A base64 PNG of reference against target for one column, or None."""
    if column.binned is None:
        return None
    ref_hist, tgt_hist = reference.histogram(column.column), target.histogram(column.column)
    figure = Figure(figsize=(10, 4))
    axes = figure.add_subplot()
    both_numeric = all(p.stats(column.column).kind == "numeric" for p in (reference, target))
    if _few_integers(ref_hist) and tgt_hist is not None and tgt_hist.kind == "numeric":
        assert ref_hist is not None
        _value_bars(axes, ref_hist, tgt_hist)
    elif column.kind == "numeric" and both_numeric:
        _numeric_plot(axes, reference, target, column.column)
    else:
        # Text values, or a side with no values at all (nothing to draw a histogram of).
        figure.set_size_inches(10, max(4.0, 0.32 * len(column.binned.labels)))
        _binned_plot(axes, column)
    axes.legend(fontsize=10, loc="upper right")
    axes.set_title(
        f"{column.column}: PSI {_num(column.psi)}, "
        f"nulls {column.reference_null_share:.1%} → {column.target_null_share:.1%}",
        fontsize=12,
    )
    return _png(figure)


# -- HTML ------------------------------------------------------------------
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child, td.why { text-align: left; }
td.why { max-width: 32em; font-size: 0.85em; }
th.info, td.info { color: #777; }
.drift { color: #b00020; font-weight: bold; } .ok { color: #2e7d32; } .skip { color: #777; }
.fail { background: #fdecea; padding: 0.6em 1em; }
.pass { background: #e8f5e9; padding: 0.6em 1em; }
.window { font-size: 1.1em; }
section { margin: 1.5em 0; } img { width: 100%; max-width: 1000px; }
"""


def _score_source(result: DriftResult) -> str:
    if result.deterministic:
        return "from exact histograms (repeatable)"
    return "from whylogs sketches (a profile lacks exact histograms: may vary between runs)"


def render_html(
    result: DriftResult,
    reference: Profile,
    target: Profile,
    *,
    title: str = "Drift report",
    sources: Mapping[str, object] | None = None,
    on_column: Callable[[str], None] | None = None,
) -> str:
    esc = html.escape
    banner_class = "fail" if result.failed else "pass"
    rows = []
    sections = []
    for c in ordered(result):
        wl = c.whylogs
        verdict = _verdict_text(c)
        css = {"SEVERE": "drift", "DRIFT": "drift", "ok": "ok"}.get(verdict, "skip")
        role = " (prediction)" if c.role == "prediction" else ""
        why = "; ".join(c.criteria) or c.note
        rows.append(
            f"<tr><td><a href='#{esc(c.column)}'>{esc(c.column)}</a>{role}</td><td>{c.kind}</td>"
            f"<td>{_importance(c)}</td><td>{_num(c.psi)}</td>"
            f"<td>{_num(c.thresholds.get('psi')) if c.judged else '-'}</td>"
            f"<td>{'-' if c.novel is None else f'{c.novel:.1%}'}</td>"
            f"<td>{c.reference_null_share:.1%} → {c.target_null_share:.1%}</td>"
            f"<td><span class='{css}'>{verdict}</span></td><td class='why'>{esc(why)}</td>"
            f"<td class='info'>{_num(c.js)}</td>"
            f"<td class='info'>{esc(wl.algorithm) if wl else '-'} "
            f"p={_pvalue(wl.pvalue) if wl else '-'}</td></tr>"
        )
        image = column_plot(c, reference, target)
        body = f"<img alt='{esc(c.column)}' src='data:image/png;base64,{image}'>" if image else ""
        normal = f"<p>{esc(c.normal)}</p>" if c.normal else ""
        sections.append(
            f"<section id='{esc(c.column)}'><h3>{esc(c.column)}{role}: {verdict}</h3>"
            f"{normal}{body}</section>"
        )
        if on_column is not None:
            on_column(c.column)
    policy = result.policy
    source_items = "".join(f"<li>{esc(k)}: {esc(str(v))}</li>" for k, v in (sources or {}).items())
    if result.calibrated_days is not None:
        rule = (
            f"a column drifts when a statistic is above the p{policy.quantile * 100:g} of what "
            f"{result.calibrated_days}-day windows of history scored against this reference "
            f"(PSI at least {policy.psi_floor}, outside-reference share at least "
            f"{policy.novel_floor:.0%}, null share moved at least {policy.nulls_floor:.0%}); "
            f"it is severe beyond {policy.severe_factor:g}x the largest historical score"
        )
    else:
        rule = (
            f"no calibration: a column drifts at PSI &ge; {policy.psi_threshold} or JS &ge; "
            f"{policy.js_threshold} (they agree: PSI ≈ 5.5·JS²)"
        )
    not_judged = [c.column for c in result.columns if not c.judged]
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{esc(title)}</h1>
<p class="window" id="target-window"><b>Target window:</b> {
        esc(_window_text(result.target_window))
    }<br>
<b>Reference window:</b> {esc(_window_text(result.reference_window))}</p>
<p class="{banner_class}"><b>{esc(summary_line(result))}</b></p>
<ul>
<li id="prediction"><b>{esc(prediction_line(result))}</b></li>
<li>{esc(weighted_line(result))}</li>
<li id="normal">What is normal: {esc(result.calibration_note)}</li>
<li>rule: {rule}; the run fails on a severe column, when more than
{policy.max_drift_share:.0%} of the judged features drift, when drifted features carry more than
{policy.max_weighted_share:.0%} of the importance, when the prediction drifts
({"on" if policy.fail_on_prediction else "off"}), or when a critical column drifts
({esc(", ".join(policy.critical) or "none named")})</li>
<li>not judged (not comparable by construction): {esc(", ".join(not_judged) or "-")}</li>
<li>only in reference: {esc(", ".join(result.only_in_reference) or "-")};
only in target: {esc(", ".join(result.only_in_target) or "-")}</li>
<li>scores {esc(_score_source(result))};
JS and whylogs' own tests are information only, not part of the verdict</li>
{source_items}
<li>generated {datetime.now(UTC).isoformat(timespec="seconds")}</li>
</ul>
<table><tr><th>column</th><th>kind</th><th>importance</th><th>PSI</th><th>normal PSI up to</th>
<th>outside ref</th><th>nulls ref → target</th><th>verdict</th><th class="why">why</th>
<th class="info">JS (info)</th><th class="info">whylogs test (info)</th></tr>
{"".join(rows)}
</table>
{"".join(sections)}
</body></html>
"""


def write_html(html_text: str, path: Path) -> Path:
    write_text(html_text, path)
    return path
