"""Drift calibration of the January–May reference: how long it takes (target: 60 s).

    .venv/bin/python bench/drift_calibration.py [--data-dir DIR] [--repeats 3]

Data as in ``bench/drift_data.py``: January–May flights with the model's
inputs and probability (133k rows, 31 columns), the reference profile that
training wrote. Measured, each ``--repeats`` times:

- baseline: profiling the same rows into a reference profile (whylogs plus the
  exact histograms), which training does anyway;
- calibration: ``calibrate_frame``, i.e. per-day histograms, then every 1-, 3-
  and 7-day window of the period scored against the reference.

The figures depend on the machine and on what else runs on it; the ratio to
the baseline, measured in the same run, travels better.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drift_data import prepare

from monitoring.calibration import calibrate_frame
from monitoring.reference import write_reference_profile

console = Console(width=max(Console().width, 110))
LIMIT_SECONDS = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scored, _, _ = prepare(args.data_dir, console)
    frame = scored.frame
    rows = frame[frame["_time"] < "2013-06-01"]
    inputs = [c for c in scored.columns if c != "probability"]
    baseline, calibration = [], []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):
            started = time.perf_counter()
            path = write_reference_profile(
                rows, inputs, "label", "probability", Path(folder) / "reference.bin"
            )
            baseline.append(time.perf_counter() - started)
            started = time.perf_counter()
            result, _ = calibrate_frame(rows, path)
            calibration.append(time.perf_counter() - started)
    windows = sum(result.windows.values())
    lengths = ", ".join(f"{n} x {d}-day" for d, n in result.windows.items())
    table = Table(
        title=f"calibration: {len(rows):,} rows, {len(result.nulls)} columns, "
        f"{windows} windows ({lengths})"
    )
    for name in ("step", "median s", "min s", "max s", "vs baseline", "limit"):
        table.add_column(name, justify="left" if name == "step" else "right")
    base = statistics.median(baseline)
    for name, values, limit in (
        ("baseline: profile the reference", baseline, ""),
        ("calibrate (1, 3, 7 days)", calibration, f"{LIMIT_SECONDS:.0f} s"),
    ):
        median = statistics.median(values)
        table.add_row(
            name, f"{median:.2f}", f"{min(values):.2f}", f"{max(values):.2f}",
            f"{median / base:.2f}x", limit,
        )  # fmt: skip
    console.print(table)
    worst = max(calibration)
    verdict = "within" if worst <= LIMIT_SECONDS else "OVER"
    console.print(f"slowest calibration {worst:.1f} s: {verdict} the {LIMIT_SECONDS:.0f} s target")
    return 0 if worst <= LIMIT_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
