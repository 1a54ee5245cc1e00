"""The loop's timeline: ``<data>/reports/lifecycle/index.html`` and ``summary.json``.

Drawn from what the loop recorded: the ledger of served flights (which model
answered each, and what every baseline arm said of it), the outcomes knowable
at the end, the controller's daily observations (drift share, live metrics),
and its decisions. The headline is the mean of the monthly live ROC-AUCs over
July–December (the months each fully served), loop against each baseline, with
a paired bootstrap 95% CI (flights resampled within months).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import dates
from matplotlib.figure import Figure
from rich.table import Table
from sklearn.metrics import log_loss, roc_auc_score

from feature_repo.atomic_io import write_json, write_text
from feature_repo.settings import Settings
from lifecycle.controller import timeline_path
from lifecycle.simulate import SimulationRun, read_ledger

HEADLINE_MONTHS = (7, 8, 9, 10, 11, 12)
RESAMPLES = 500
MARKERS = {  # decision -> (colour, marker)
    "retrain": ("#1f77b4", "^"),
    "shadow_start": ("#9467bd", "s"),
    "canary_start": ("#8c564b", "D"),
    "promote": ("#2ca02c", "*"),
    "refuse": ("#ff7f0e", "x"),
    "rollback": ("#d62728", "v"),
}


def report_dir(settings: Settings) -> Path:
    return settings.reports_dir / "lifecycle"


def labelled_ledger(settings: Settings, now: datetime) -> pd.DataFrame:
    """The ledger joined with the outcomes known at ``now``; unlabelled flights dropped."""
    from monitoring.performance import read_outcomes

    ledger = read_ledger(settings)
    if ledger.empty:
        return ledger
    outcomes = read_outcomes(settings.raw_dir, now)
    frame = ledger.merge(outcomes, on="flight_id", how="inner")
    frame["served_at"] = pd.to_datetime(frame["served_at"], utc=True)
    frame["day"] = frame["served_at"].dt.strftime("%Y-%m-%d")
    frame["month"] = frame["served_at"].dt.month
    return frame.sort_values("served_at", kind="stable").reset_index(drop=True)


def arms_of(frame: pd.DataFrame) -> list[str]:
    return [c.removesuffix("_probability") for c in frame.columns if c.endswith("_probability")]


def _metrics(y: np.ndarray, p: np.ndarray) -> tuple[float | None, float | None]:
    if len(np.unique(y)) < 2:
        return None, None
    return float(roc_auc_score(y, p)), float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)))


def daily_metrics(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for day, part in frame.groupby("day", sort=True):
        y = part["label"].to_numpy()
        row: dict[str, Any] = {"day": day, "flights": len(part)}
        row["loop_roc_auc"], row["loop_log_loss"] = _metrics(y, part["probability"].to_numpy())
        for arm in arms_of(frame):
            auc, loss = _metrics(y, part[f"{arm}_probability"].to_numpy())
            row[f"{arm}_roc_auc"], row[f"{arm}_log_loss"] = auc, loss
        rows.append(row)
    return pd.DataFrame(rows)


def monthly_metrics(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for month, part in frame.groupby("month", sort=True):
        y = part["label"].to_numpy()
        row: dict[str, Any] = {"month": int(month), "flights": len(part)}
        row["loop"] = _metrics(y, part["probability"].to_numpy())[0]
        for arm in arms_of(frame):
            row[arm] = _metrics(y, part[f"{arm}_probability"].to_numpy())[0]
        rows.append(row)
    return rows


def headline(frame: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
    """Loop against each arm: mean monthly ROC-AUC over July-December, paired bootstrap CI."""
    from monitoring.paired import mean_group_auc_difference

    part = frame[frame["month"].isin(HEADLINE_MONTHS)]
    if part.empty:  # a run outside July-December (a test, a short replay): all its months
        part = frame
    months = part["month"].to_numpy()
    y = part["label"].to_numpy()
    loop = part["probability"].to_numpy()
    result: dict[str, Any] = {
        "months": sorted({int(m) for m in months}),
        "flights": len(part),
        "resamples": RESAMPLES,
        "seed": seed,
        "loop_mean_roc_auc": _mean_monthly_auc(months, y, loop),
    }
    for arm in arms_of(frame):
        other = part[f"{arm}_probability"].to_numpy()
        mean, low, high = mean_group_auc_difference(months, y, loop, other, RESAMPLES, seed)
        result[arm] = {
            "mean_roc_auc": _mean_monthly_auc(months, y, other),
            "loop_minus_arm": round(mean, 4),
            "ci_low": round(low, 4),
            "ci_high": round(high, 4),
        }
    return result


def _mean_monthly_auc(months: np.ndarray, y: np.ndarray, p: np.ndarray) -> float:
    aucs = [roc_auc_score(y[months == m], p[months == m]) for m in np.unique(months)]
    return round(float(np.mean(aucs)), 4)


def read_timeline(settings: Settings) -> list[dict[str, Any]]:
    path = timeline_path(settings)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def timeline_plot(daily: pd.DataFrame, timeline: list[dict[str, Any]]) -> str:
    figure = Figure(figsize=(12, 8.5))
    auc_axis, loss_axis, drift_axis = figure.subplots(3, 1, sharex=True)
    days = pd.to_datetime(daily["day"])
    series = [("loop", "loop (served)", "#2ca02c", 2.0)] + [
        (arm, arm, colour, 1.3)
        for arm, colour in zip(arms_of_daily(daily), ("#7f7f7f", "#1f77b4"), strict=False)
    ]
    for axis, metric, label in (
        (auc_axis, "roc_auc", "live ROC-AUC"),
        (loss_axis, "log_loss", "live log loss"),
    ):
        for name, legend, colour, width in series:
            values = daily[f"{name}_{metric}"]
            # A day holds under a thousand flights: its value is noise next to a gap of
            # 0.02 between models. The days stay as faint lines; the weekly mean reads.
            axis.plot(days, values, color=colour, lw=0.6, alpha=0.3)
            weekly = values.rolling(7, min_periods=3, center=True).mean()
            axis.plot(days, weekly, color=colour, lw=width, label=f"{legend}, 7-day mean")
        axis.set_ylabel(f"{label} (daily, faint)")
        axis.grid(alpha=0.3)
    auc_axis.legend(loc="lower left", fontsize=8, ncol=3)
    checks = [t for t in timeline if "drift_share" in t]
    if checks:
        drift_axis.bar(
            pd.to_datetime([t["now"] for t in checks]),
            [t["drift_share"] for t in checks],
            width=0.8,
            color="#bcbd22",
        )
    drift_axis.set_ylabel("daily drift share")
    drift_axis.grid(alpha=0.3)
    low = float(np.nanmin(daily[[c for c in daily if c.endswith("roc_auc")]].to_numpy()))
    shown: set[str] = set()
    for entry in timeline:
        for decision in entry.get("decisions", []):
            if decision["action"] not in MARKERS:
                continue
            colour, marker = MARKERS[decision["action"]]
            when = pd.Timestamp(decision["now"])
            for axis in (auc_axis, loss_axis, drift_axis):
                axis.axvline(when, color=colour, lw=0.8, alpha=0.5)
            name = decision["action"]
            auc_axis.scatter(
                [when],
                [low],
                color=colour,
                marker=marker,
                s=60,
                zorder=3,
                label=None if name in shown else name,
            )
            shown.add(name)
    auc_axis.legend(loc="lower left", fontsize=8, ncol=4)
    drift_axis.xaxis.set_major_formatter(dates.DateFormatter("%b %d"))
    figure.tight_layout()
    return _png(figure)


def arms_of_daily(daily: pd.DataFrame) -> list[str]:
    return [
        c.removesuffix("_roc_auc")
        for c in daily.columns
        if c.endswith("_roc_auc") and not c.startswith("loop_")
    ]


def _decision_rows(timeline: list[dict[str, Any]]) -> str:
    rows = []
    for entry in timeline:
        for d in entry.get("decisions", []):
            evidence = html.escape(json.dumps(d.get("evidence", {}), default=str)[:400])
            rows.append(
                f"<tr class='{html.escape(d['action'])}'><td>{html.escape(d['now'][:16])}</td>"
                f"<td>{html.escape(d['action'])}</td><td>{html.escape(d.get('tag') or '')}</td>"
                f"<td>{html.escape(d.get('trigger') or '')}</td>"
                f"<td>{html.escape(d.get('reason') or '')}</td>"
                f"<td><code>{evidence}</code></td></tr>"
            )
    return "".join(rows)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def render_html(summary: dict[str, Any], plot: str, timeline: list[dict[str, Any]]) -> str:
    head = summary["headline"]
    lines = []
    for arm in summary["arms"]:
        if arm in head:
            h = head[arm]
            lines.append(
                f"<li>loop {head['loop_mean_roc_auc']:.4f} vs {html.escape(arm)} "
                f"{h['mean_roc_auc']:.4f}: <b id='gain-{html.escape(arm)}'>"
                f"{h['loop_minus_arm']:+.4f}</b>, "
                f"95% CI [{h['ci_low']:+.4f}, {h['ci_high']:+.4f}]</li>"
            )
    months = "".join(
        f"<tr><td>{m['month']}</td><td>{m['flights']:,}</td><td>{_fmt(m['loop'])}</td>"
        + "".join(f"<td>{_fmt(m.get(a))}</td>" for a in summary["arms"])
        + "</tr>"
        for m in summary["monthly"]
    )
    arm_heads = "".join(f"<th>{html.escape(a)}</th>" for a in summary["arms"])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>lifecycle timeline</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
td, th {{ border: 1px solid #ccc; padding: 3px 6px; }}
tr.promote td {{ background: #eaf6ea; }} tr.rollback td {{ background: #fbeaea; }}
tr.refuse td {{ background: #fff4e5; }}
code {{ font-size: 0.8em; }}
</style></head><body>
<h1>The continuous-training loop, {html.escape(summary["start"])} ..
{html.escape(summary["end"])}</h1>
<p>Policy <b>{html.escape(summary["policy"])}</b>. Every flight was scored by the loop's serving
model and by each baseline on the same online features; labels as known at
{html.escape(summary["labels_known_at"])}. Mean of the monthly ROC-AUCs over
{", ".join(str(m) for m in head.get("months", []))} ({head.get("flights", 0):,} labelled flights;
paired bootstrap, {head.get("resamples")} resamples within months, seed {head.get("seed")}):</p>
<ul id="headline">{"".join(lines)}</ul>
<img alt="daily live ROC-AUC, log loss and drift share, with decisions"
 src="data:image/png;base64,{plot}">
<h2>By month</h2>
<table><tr><th>month</th><th>flights</th><th>loop</th>{arm_heads}</tr>{months}</table>
<h2>Decisions</h2>
<table><tr><th>now</th><th>decision</th><th>model</th><th>trigger</th><th>why</th><th>evidence</th></tr>
{_decision_rows(timeline)}</table>
<p><small>written {datetime.now(UTC).isoformat(timespec="seconds")}</small></p>
</body></html>
"""


def write_report(
    settings: Settings, run: SimulationRun | None, out: Path | None = None
) -> dict[str, Any]:
    """Write ``index.html`` and ``summary.json``; returns the summary."""
    from feature_repo.clock import Clock

    folder = out or report_dir(settings)
    now = Clock(settings).now().instant
    frame = labelled_ledger(settings, now)
    if frame.empty:
        raise ValueError(
            f"no served flight with a known label in {settings.data_dir}: simulate first"
        )
    timeline = read_timeline(settings)
    daily = daily_metrics(frame)
    decisions = [d for entry in timeline for d in entry.get("decisions", [])]
    # Redrawn without a run (``python -m lifecycle report``): what only the run knew, its
    # timing, is kept from the summary it wrote.
    previous = _read_summary(folder / "summary.json") if run is None else {}
    summary: dict[str, Any] = {
        "start": frame["day"].min(),
        "end": frame["day"].max(),
        "policy": run.policy if run else _policy_of(settings, decisions),
        "arms": arms_of(frame),
        "labels_known_at": now.isoformat(),
        "headline": headline(frame),
        "monthly": monthly_metrics(frame),
        "decisions": dict(Counter(d["action"] for d in decisions)),
        "report": str(folder / "index.html"),
    }
    if run is not None:
        summary["run"] = {
            "ticks": run.ticks,
            "flights": run.flights,
            "wall_seconds": round(run.wall_seconds, 1),
            "phase_seconds": run.seconds.to_dict(),
            "baseline_retrain_seconds": round(run.baseline_retrain_seconds, 1),
        }
    elif "run" in previous:
        summary["run"] = previous["run"]
    write_text(
        render_html(summary, timeline_plot(daily, timeline), timeline), folder / "index.html"
    )
    write_json(summary, folder / "summary.json")
    return summary


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _policy_of(settings: Settings, decisions: list[dict[str, Any]]) -> str:
    """The policy named by the loop's newest decision in the audit log."""
    from training.promotion import read_audit

    if not decisions:
        return "(no decisions recorded)"
    named = [
        e["policy"]
        for e in read_audit(settings)
        if str(e.get("action", "")).startswith("lifecycle_") and e.get("policy")
    ]
    return str(named[-1]) if named else "see the audit log"


def summary_table(summary: dict[str, Any]) -> Table:
    head = summary["headline"]
    table = Table(
        title=f"loop ({summary['policy']}) against the baselines, mean monthly "
        f"ROC-AUC over months {head.get('months')}"
    )
    for column in ("arm", "mean ROC-AUC", "loop minus arm", "95% CI"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    table.add_row("loop", _fmt(head.get("loop_mean_roc_auc")), "", "")
    for arm in summary["arms"]:
        if arm in head:
            h = head[arm]
            table.add_row(
                arm,
                f"{h['mean_roc_auc']:.4f}",
                f"{h['loop_minus_arm']:+.4f}",
                f"[{h['ci_low']:+.4f}, {h['ci_high']:+.4f}]",
            )
    decisions = ", ".join(f"{k} {v}" for k, v in summary["decisions"].items()) or "none"
    table.caption = f"decisions: {decisions}"
    return table
