"""build-dataset + train: wall time and peak memory, for the full year and for 10x the data.

    .venv/bin/python bench/train.py [--scales 1,10] [--grid default] [--threads 1] [--keep]

Each scale runs in its own temporary data directory, never ``./data``. Setup
(``python -m feature_repo ingest --through 2013-12-31 --scale N`` and ``apply``)
is timed but not part of the result. Then the two measured steps, each in its
own process:

- ``python -m training build-dataset --start 2013-01-01 --end 2013-12-31``;
- ``python -m training train --train-start 2013-01-01 --train-end 2013-09-30
  --valid-end 2013-12-31``, which reuses the set the first step stored.

Peak memory is the child's own ``ru_maxrss`` from ``os.wait4``: that process
alone, not the largest child seen so far. Not run by the tests; the figures
depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
START, TRAIN_END, END = "2013-01-01", "2013-09-30", "2013-12-31"
# Wide enough for the table even when the output goes to a file (rich then assumes 80).
console = Console(width=max(Console().width, 110))


@dataclass(frozen=True)
class Measurement:
    scale: int
    step: str
    seconds: float
    cpu_seconds: float
    peak_mb: float


def run_step(argv: list[str], env: dict[str, str], log: Path) -> tuple[float, float, float]:
    """Run one command; return wall seconds, CPU seconds and peak resident MB of that process.

    CPU time is printed beside wall time because on a shared machine the wall
    clock mostly measures the neighbours.
    """
    started = time.perf_counter()
    with open(log, "a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise RuntimeError(f"{' '.join(argv[1:4])} failed ({process.returncode}):\n{tail}")
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, cpu, usage.ru_maxrss / 1024  # Linux reports kilobytes


def bench_scale(scale: int, args: argparse.Namespace) -> tuple[list[Measurement], dict]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"feastline-bench-train-x{scale}-"))
    env = dict(os.environ, FEASTLINE_DATA_DIR=str(data_dir), FEASTLINE_LOG_LEVEL="WARNING")
    log = data_dir / "bench.log"
    python = sys.executable
    steps = {
        "setup": [
            [python, "-m", "feature_repo", "ingest", "--through", END, "--scale", str(scale)],
            [python, "-m", "feature_repo", "apply"],
        ],
        "build-dataset": [
            [python, "-m", "training", "build-dataset", "--start", START, "--end", END]
        ],
        "train": [
            [
                python, "-m", "training", "train",
                "--train-start", START, "--train-end", TRAIN_END, "--valid-end", END,
                "--grid", args.grid, "--threads", str(args.threads),
            ]
        ],
    }  # fmt: skip
    results: list[Measurement] = []
    try:
        for step, commands in steps.items():
            with console.status(f"x{scale}: {step} (log: {log})"):
                seconds, cpu, peak = 0.0, 0.0, 0.0
                for argv in commands:
                    took, used, rss = run_step(argv, env, log)
                    seconds, cpu, peak = seconds + took, cpu + used, max(peak, rss)
            results.append(Measurement(scale, step, seconds, cpu, peak))
            console.print(f"x{scale} {step}: {seconds:.1f}s ({cpu:.1f}s CPU), peak {peak:,.0f} MB")
        manifest = json.loads(next((data_dir / "datasets").glob("*.manifest.json")).read_text())
        metrics = json.loads(next((data_dir / "reports").rglob("metrics.json")).read_text())
        facts = {
            "rows": manifest["rows"],
            "train_rows": metrics["train_window"]["rows"],
            "valid_rows": metrics["validation_window"]["rows"],
            "roc_auc": metrics["metrics"]["roc_auc"],
            "carrier_auc": metrics["baselines"]["carrier_history"]["roc_auc"],
        }
        return results, facts
    finally:
        if args.keep:
            console.print(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", default="1,10", help="comma-separated data scales")
    parser.add_argument("--grid", default="default", help="training grid (default, small)")
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads per fit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dirs")
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",") if s.strip()]

    table = Table(
        title=f"build-dataset + train, {START}..{END}, train to {TRAIN_END}; "
        f"grid {args.grid}, {args.threads} thread(s) per fit, {os.cpu_count()} CPUs"
    )
    for column in ("scale", "rows", "step", "wall s", "CPU s", "peak MB", "ROC-AUC (carrier)"):
        table.add_column(column, justify="left" if column == "step" else "right", no_wrap=True)
    for scale in scales:
        try:
            measurements, facts = bench_scale(scale, args)
        except RuntimeError as err:
            console.print(f"[red]error:[/red] x{scale}: {err}")
            return 1
        measured = [m for m in measurements if m.step != "setup"]
        for m in measurements:
            table.add_row(
                f"x{scale}",
                f"{facts['rows']:,}",
                f"({m.step})" if m.step == "setup" else m.step,
                f"{m.seconds:.0f}",
                f"{m.cpu_seconds:.0f}",
                f"{m.peak_mb:,.0f}",
                "",
            )
        table.add_row(
            f"x{scale}",
            f"{facts['rows']:,}",
            "[b]total[/b]",
            f"[b]{sum(m.seconds for m in measured):.0f}[/b]",
            f"[b]{sum(m.cpu_seconds for m in measured):.0f}[/b]",
            f"[b]{max(m.peak_mb for m in measured):,.0f}[/b]",
            f"{facts['roc_auc']:.4f} ({facts['carrier_auc']:.4f})",
            end_section=True,
        )
    console.print(table)
    console.print(
        "ROC-AUC: the model on the validation window (Oct-Dec), and in brackets the "
        "carrier-history baseline. total = build-dataset + train; setup (ingest + apply) "
        "is not part of it."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
