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
from monitoring.drift import ColumnDrift, DriftResult
from monitoring.profiles import Profile

if TYPE_CHECKING:
    from monitoring.performance import PerformanceResult
    from monitoring.skew import SkewResult

REFERENCE_COLOR = "#4c72b0"
TARGET_COLOR = "#dd8452"
_PLOT_BINS = 40
_FEW_VALUES = 12


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pvalue(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"


def ordered(result: DriftResult) -> list[ColumnDrift]:
    """Drifted columns first, then by PSI, largest first."""
    return sorted(result.columns, key=lambda c: (not c.drifted, -(c.psi or 0.0), c.column))


def _whylogs_cell(column: ColumnDrift) -> str:
    wl = column.whylogs
    if wl is None:
        return "-"
    return f"{wl.algorithm} p={_pvalue(wl.pvalue)} {wl.category or ''}".strip()


def drift_table(result: DriftResult, title: str | None = None, limit: int | None = None) -> Table:
    """The columns most drifted first; only the first ``limit`` of them if given."""
    table = Table(title=title, show_edge=False)
    table.add_column("column", overflow="fold")
    table.add_column("kind")
    table.add_column("PSI", justify="right")
    table.add_column("JS", justify="right")
    table.add_column("whylogs (not used for the verdict)")
    table.add_column("nulls ref→target", justify="right")
    table.add_column("verdict")
    rows = ordered(result)
    if limit is not None and len(rows) > limit:
        table.caption = (
            f"{len(rows) - limit} more columns, less drifted: see the report (-v lists all)"
        )
        rows = rows[:limit]
    for c in rows:
        verdict = "[red]DRIFT[/red]" if c.drifted else "[green]ok[/green]"
        if c.column in result.policy.critical:
            verdict += " (critical)"
        table.add_row(
            c.column,
            c.kind,
            _num(c.psi),
            _num(c.js),
            _whylogs_cell(c),
            f"{c.reference_null_share:.1%}→{c.target_null_share:.1%}",
            verdict + (f" [dim]{c.note}[/dim]" if c.note else ""),
        )
    return table


def summary_line(result: DriftResult) -> str:
    verdict = "FAIL: " + "; ".join(result.reasons) if result.failed else "pass"
    return (
        f"drift: {len(result.drifted)} of {len(result.columns)} columns drifted "
        f"({result.drift_share:.0%}), {result.reference_rows:,} reference rows vs "
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
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _numeric_plot(axes: Axes, reference: Profile, target: Profile, column: str) -> None:
    # A finer, evenly spaced grid than the PSI bins: this is for the eye.
    lows = [p.quantiles(column, [0.005])[0] for p in (reference, target)]
    highs = [p.quantiles(column, [0.995])[0] for p in (reference, target)]
    low, high = min(lows), max(highs)
    if high <= low:
        high = low + 1.0
    step = (high - low) / _PLOT_BINS
    # Right-closed bins: start just below ``low`` so that values equal to it show.
    edges = [math.nextafter(low, -math.inf)] + [low + i * step for i in range(1, _PLOT_BINS + 1)]
    centers = [low + (i + 0.5) * step for i in range(_PLOT_BINS)]
    sides = ((reference, REFERENCE_COLOR, "reference"), (target, TARGET_COLOR, "target"))
    for profile, color, name in sides:
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
    axes.set_yticks(positions, binned.labels, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("share of rows")


def column_plot(column: ColumnDrift, reference: Profile, target: Profile) -> str | None:
    """A base64 PNG of reference against target for one column, or None."""
    if column.binned is None:
        return None
    distinct = reference.stats(column.column).distinct or 0
    # A few distinct numbers (engines, weekday) read better as bars per value, and a
    # side with no values at all (a feature gone missing) has no histogram to draw.
    both_numeric = all(p.stats(column.column).kind == "numeric" for p in (reference, target))
    as_bars = column.kind != "numeric" or distinct <= _FEW_VALUES or not both_numeric
    height = max(2.6, 0.22 * len(column.binned.labels)) if as_bars else 2.6
    figure = Figure(figsize=(6.5, height))
    axes = figure.add_subplot()
    if as_bars:
        _binned_plot(axes, column)
    else:
        _numeric_plot(axes, reference, target, column.column)
    axes.legend(fontsize=7)
    axes.set_title(
        f"{column.column}: PSI {_num(column.psi)}, JS {_num(column.js)}, "
        f"nulls {column.reference_null_share:.1%} → {column.target_null_share:.1%}",
        fontsize=9,
    )
    return _png(figure)


# -- HTML ------------------------------------------------------------------
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.drift { color: #b00020; font-weight: bold; } .ok { color: #2e7d32; }
.fail { background: #fdecea; padding: 0.6em 1em; }
.pass { background: #e8f5e9; padding: 0.6em 1em; }
section { margin: 1.5em 0; } img { max-width: 100%; }
"""


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
    start, end = result.target_window
    window = f"{start.isoformat() if start else '?'} .. {end.isoformat() if end else '?'}"
    banner_class = "fail" if result.failed else "pass"
    rows = []
    sections = []
    for c in ordered(result):
        wl = c.whylogs
        verdict = '<span class="drift">DRIFT</span>' if c.drifted else '<span class="ok">ok</span>'
        rows.append(
            f"<tr><td><a href='#{esc(c.column)}'>{esc(c.column)}</a></td><td>{c.kind}</td>"
            f"<td>{_num(c.psi)}</td><td>{_num(c.js)}</td>"
            f"<td>{esc(wl.algorithm) if wl else '-'}</td>"
            f"<td>{_pvalue(wl.pvalue) if wl else '-'}</td>"
            f"<td>{esc(wl.category or '-') if wl else '-'}</td>"
            f"<td>{c.reference_null_share:.1%} → {c.target_null_share:.1%}</td>"
            f"<td>{verdict} {esc(c.note)}</td></tr>"
        )
        image = column_plot(c, reference, target)
        body = f"<img alt='{esc(c.column)}' src='data:image/png;base64,{image}'>" if image else ""
        sections.append(f"<section id='{esc(c.column)}'><h3>{esc(c.column)}</h3>{body}</section>")
        if on_column is not None:
            on_column(c.column)
    policy = result.policy
    source_items = "".join(f"<li>{esc(k)}: {esc(str(v))}</li>" for k, v in (sources or {}).items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{esc(title)}</h1>
<p class="{banner_class}"><b>{esc(summary_line(result))}</b></p>
<ul>
<li>target window: {esc(window)}</li>
<li>policy: a column drifts when PSI &ge; {policy.psi_threshold} or JS &ge; {policy.js_threshold};
the run fails when more than {policy.max_drift_share:.0%} of columns drift
or a critical column drifts ({esc(", ".join(policy.critical) or "none named")})</li>
<li>only in reference: {esc(", ".join(result.only_in_reference) or "-")};
only in target: {esc(", ".join(result.only_in_target) or "-")}</li>
{source_items}
<li>generated {datetime.now(UTC).isoformat(timespec="seconds")}</li>
</ul>
<table><tr><th>column</th><th>kind</th><th>PSI</th><th>JS</th><th>whylogs test</th>
<th>p-value</th><th>whylogs</th><th>nulls ref → target</th><th>verdict</th></tr>
{"".join(rows)}
</table>
{"".join(sections)}
</body></html>
"""


def write_html(html_text: str, path: Path) -> Path:
    write_text(html_text, path)
    return path
