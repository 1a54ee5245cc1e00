"""The continuous-training loop's cost: the June-December simulation by phase, and one retrain.

    .venv/bin/python bench/lifecycle.py [--data-dir DIR] [--simulate] [--retrain-at ISO]

With ``--simulate`` (or when ``DIR`` holds no finished simulation) it prepares
``DIR`` as ``make simulate`` does and runs the whole simulation (target: at
most 20 minutes on this machine). It then prints the phase table from the
run's ``summary.json`` (features, serving, monitoring, training) and times one
retrain at 1x data: the default policy's retrain at ``--retrain-at``
(default 2013-12-01T04:00Z, all of January-November), reusing the champion's
hyperparameters (target: at most 60 s). Its training set is built afresh, as
a loop's first retrain at that instant would. Not run by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: import this checkout's packages

DEFAULT_DATA_DIR = Path("/tmp/feastline-bench-lifecycle")
console = Console()


def simulate(data_dir: Path) -> None:
    env = dict(os.environ, SIM_DATA=str(data_dir), SIM_REPORT=str(data_dir / "reports/lifecycle"))
    subprocess.run(["make", "--no-print-directory", "simulate"], cwd=ROOT, env=env, check=True)


def phase_table(summary: dict) -> Table:
    run = summary["run"]
    phases = run["phase_seconds"]
    total = run["wall_seconds"]
    table = Table(title=f"June-December simulation: {run['ticks']:,} ticks, "
                  f"{run['flights']:,} flights served")  # fmt: skip
    for column in ("phase", "seconds", "share"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for name in ("features", "serving", "monitoring", "training"):
        table.add_row(name, f"{phases[name]:,.0f}", f"{phases[name] / total:.0%}")
    table.add_row("total (wall)", f"{total:,.0f}", f"target 1,200 s: {total / 1200:.2f}x")
    return table


def time_retrain(data_dir: Path, at: datetime) -> tuple[float, float, str]:
    """One retrain of the default policy at ``at``: wall and CPU seconds, and its tag."""
    os.environ["FEASTLINE_DATA_DIR"] = str(data_dir)
    from feature_repo.settings import Settings
    from lifecycle.controller import train_challenger
    from lifecycle.policy import load_policy
    from monitoring.registry import champion

    settings = Settings.from_env()
    policy = load_policy()
    metadata = champion(settings).metadata
    wall, cpu = time.perf_counter(), time.process_time()
    tag = train_challenger(settings, policy, at, metadata, {"by": "bench/lifecycle.py"})
    return time.perf_counter() - wall, time.process_time() - cpu, tag


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--simulate", action="store_true", help="run the simulation afresh")
    parser.add_argument("--retrain-at", default="2013-12-01T04:00:00+00:00")
    args = parser.parse_args()
    if args.data_dir.resolve() == (ROOT / "data").resolve():
        parser.error("use a data dir of the bench's own, not ./data")
    summary_path = args.data_dir / "reports" / "lifecycle" / "summary.json"
    if args.simulate or not summary_path.exists():
        started = time.perf_counter()
        simulate(args.data_dir)
        console.print(f"make simulate: {time.perf_counter() - started:,.0f} s in all")
    summary = json.loads(summary_path.read_text())
    console.print(phase_table(summary))
    wall, cpu, tag = time_retrain(args.data_dir, datetime.fromisoformat(args.retrain_at))
    console.print(
        f"one retrain at 1x data ({tag}, as of {args.retrain_at}, reused hyperparameters): "
        f"{wall:.1f} s wall, {cpu:.1f} s CPU (target <= 60 s); {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
