"""Is the promotion gate's paired ROC-AUC CI as wide as the noise of days that arrive in time?

    .venv/bin/python bench/paired_ci_calibration.py --data-dir DIR [--days 1,3,7]

``DIR`` holds a finished simulation (``make simulate SIM_DATA=DIR``): its ledger
keeps, for every flight, the probability of each baseline arm, and the naive
arm's model is fixed within a calendar month (it retrains on the first). So
within a month the true ROC-AUC difference between the naive and the static
arm is one number, and the spread of the differences measured on consecutive
windows of ``N`` days around their month's mean is sampling noise alone.

The loop's gate judges a challenger on such a window (the 3-day shadow) with
DeLong's paired CI (``monitoring.paired.paired_auc``), which treats every
flight as independent, or, since session 10, with a CI over days
(``monitoring.paired.clustered_auc``: a delete-one-day jackknife, Student's t).
This prints, per window length, DeLong's mean standard error, the observed
spread, their ratio, and the share of windows whose month's mean lies outside
each CI (5% if the CI were calibrated; the CI over days needs 3 days).

Then the rollback's false alarms. On consecutive watches of ``--watch-days`` days
inside each month, with each arm in turn as the old champion, it asks the CI over
days of the old minus the new, both recentred on their month's true difference
(so the two are equal models), at each daily check from the third day: the share
of watches that roll back when the CI is asked at every check, and when it is
asked once at the end with a stop loss at every check (``confirm_at: watch_end``).
The default asks at every check; with its 3-day watch both ask once. Not run by the
tests.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: import this checkout's packages

from monitoring.paired import Z_95, clustered_auc, paired_auc  # noqa: E402  (after the path)


def window_differences(frame: pd.DataFrame, days: int, a: str, b: str) -> pd.DataFrame:
    """``b`` minus ``a`` on consecutive windows of ``days`` days inside each month."""
    rows = []
    for month, part in frame.groupby("month", sort=True):
        starts = sorted(part["day"].unique())
        for i in range(0, len(starts) - days + 1, days):
            window = part[part["day"].isin(starts[i : i + days])]
            y = window["label"].to_numpy()
            first = window[f"{a}_probability"].to_numpy()
            second = window[f"{b}_probability"].to_numpy()
            result = paired_auc(y, first, second)
            if result.difference is None or result.ci_high is None or result.ci_low is None:
                continue
            se = (result.ci_high - result.ci_low) / (2 * Z_95)
            by_day = clustered_auc(y, first, second, window["day"].to_numpy())
            rows.append((month, result.difference, se, len(window), by_day.ci_low, by_day.ci_high))
    columns = ["month", "difference", "se", "flights", "day_low", "day_high"]
    return pd.DataFrame(rows, columns=columns)


def calibration_row(
    windows: pd.DataFrame,
) -> tuple[int, float, float, float, float, float, float | None]:
    count = windows.groupby("month")["difference"].transform("count")
    windows = windows[count > 1]
    count = count[count > 1]
    month_mean = windows.groupby("month")["difference"].transform("mean")
    # Deviations from a mean of k windows are shrunk by (k - 1) / k: undone, unbiased.
    residual = (windows["difference"] - month_mean) * np.sqrt(count / (count - 1))
    spread, se = float(residual.std()), float(windows["se"].mean())
    beyond = float((residual.abs() > Z_95 * windows["se"]).mean())
    # The CI over days, checked against the same month's mean.
    low, high = windows["day_low"].astype(float), windows["day_high"].astype(float)
    judged = low.notna()
    outside = ((month_mean < low) | (month_mean > high))[judged]
    missed = float(outside.mean()) if judged.any() else None
    return len(windows), float(windows["flights"].mean()), se, spread, spread / se, beyond, missed


def false_rollbacks(
    frame: pd.DataFrame, watch: int, a: str, b: str, stop_loss: float
) -> tuple[int, float, float]:
    """Watches of ``watch`` days, each arm in turn the old champion, both recentred on
    their month's difference: the share rolled back with the CI asked at every check, and
    with the CI asked at the end and ``stop_loss`` at every check."""
    every, at_end, watches = 0, 0, 0
    for _, part in frame.groupby("month", sort=True):
        y, days = part["label"].to_numpy(), part["day"].to_numpy()
        truth = clustered_auc(y, part[f"{a}_probability"].to_numpy(),
                              part[f"{b}_probability"].to_numpy(), days).difference  # fmt: skip
        starts = sorted(part["day"].unique())
        for i in range(0, len(starts) - watch + 1, watch):
            looks = []
            for k in range(3, watch + 1):  # a CI over days needs three
                window = part[part["day"].isin(starts[i : i + k])]
                looks.append(
                    clustered_auc(
                        window["label"].to_numpy(),
                        window[f"{a}_probability"].to_numpy(),
                        window[f"{b}_probability"].to_numpy(),
                        window["day"].to_numpy(),
                    )
                )
            judged = [
                (r.difference, r.ci_low, r.ci_high)
                for r in looks
                if r.difference is not None and r.ci_low is not None and r.ci_high is not None
            ]
            if not judged or truth is None:
                continue
            # Old minus new, recentred: (gain, CI low) with b the old one, then with a.
            for centred in (
                [(gain - truth, low - truth) for gain, low, _ in judged],
                [(truth - gain, truth - high) for gain, _, high in judged],
            ):
                watches += 1
                every += any(low > 0 for _, low in centred)
                at_end += centred[-1][1] > 0 or any(gain > stop_loss for gain, _ in centred)
    return watches, every / max(watches, 1), at_end / max(watches, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--days", default="1,3,7", help="window lengths in days")
    parser.add_argument("--watch-days", type=int, default=7, help="the rollback's watch")
    parser.add_argument("--stop-loss", type=float, default=0.06, help="rollback.stop_loss")
    args = parser.parse_args()
    from feature_repo.settings import Settings
    from lifecycle.report import labelled_ledger

    settings = Settings(data_dir=args.data_dir)
    frame = labelled_ledger(settings, datetime(2014, 1, 2, tzinfo=UTC))
    if frame.empty or not {"static_probability", "naive_probability"} <= set(frame.columns):
        parser.error(f"{args.data_dir} holds no finished simulation with static and naive arms")
    table = Table(title="naive minus static ROC-AUC, windows within a month")
    for column in ("window", "windows", "flights each", "DeLong SE", "observed SD", "ratio",
                   "beyond 1.96 SE", "outside the CI over days"):  # fmt: skip
        table.add_column(column, justify="right")
    for days in (int(d) for d in args.days.split(",")):
        n, flights, se, spread, ratio, beyond, missed = calibration_row(
            window_differences(frame, days, "static", "naive")
        )
        table.add_row(f"{days} d", f"{n}", f"{flights:,.0f}", f"{se:.4f}", f"{spread:.4f}",
                      f"{ratio:.2f}x", f"{beyond:.0%}",
                      "-" if missed is None else f"{missed:.0%}")  # fmt: skip
    Console().print(table)
    watches, every, at_end = false_rollbacks(
        frame, args.watch_days, "static", "naive", args.stop_loss
    )
    rollbacks = Table(title=f"false rollbacks: {watches} watches of {args.watch_days} days "
                      "between two equal models (each arm in turn the old one)")  # fmt: skip
    rollbacks.add_column("the CI (over days) is asked")
    rollbacks.add_column("watches rolled back", justify="right")
    rollbacks.add_row("at every daily check (confirm_at: every_check)", f"{every:.0%}")
    rollbacks.add_row(f"at the end; a loss past {args.stop_loss} at any check", f"{at_end:.0%}")
    Console().print(rollbacks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
