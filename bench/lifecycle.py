"""The continuous-training loop's cost: the June-December simulation by phase, and one retrain.

    .venv/bin/python bench/lifecycle.py [--data-dir DIR] [--simulate] [--retrain-at ISO]
    .venv/bin/python bench/lifecycle.py --segment 2013-06-01:2013-06-10 [--against REF]

With ``--simulate`` (or when ``DIR`` holds no finished simulation) it prepares
``DIR`` as ``make simulate`` does and runs the whole simulation (target: at
most 20 minutes on this machine). It then prints the phase table from the
run's ``summary.json`` (features, serving, monitoring, training) and times one
retrain at 1x data: the default policy's retrain at ``--retrain-at``
(default 2013-12-01T04:00Z, all of January-November), reusing the champion's
hyperparameters (target: at most 60 s). Its training set is built afresh, as
a loop's first retrain at that instant would. Not run by the tests.

``--segment START:END`` times the simulation of those days only, from a copy of
one prepared base (``make simulation-base``), and ``--against REF`` runs the
same segment on another commit's code (a temporary ``git worktree``) in the
same bench run, first, and prints each phase as a ratio: the machine is
shared, so only figures measured side by side compare.
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


PHASES = ("features", "serving", "monitoring", "training")


def prepare_base(data_dir: Path) -> None:
    """January-May published and the January-April champion promoted, as ``make simulate``."""
    env = dict(os.environ, SIM_DATA=str(data_dir))
    subprocess.run(
        ["make", "--no-print-directory", "simulation-base"], cwd=ROOT, env=env, check=True
    )


def run_segment(code: Path, base: Path, run_dir: Path, start: str, end: str) -> dict:
    """The segment's simulation with the code in ``code``, on a fresh copy of ``base``."""
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(base, run_dir, symlinks=True)
    report = run_dir / "reports" / "lifecycle"
    # ``python -m`` puts the working directory first on sys.path: ``code``'s packages,
    # not the ones this venv has installed, are the ones that run.
    env = dict(os.environ, FEASTLINE_DATA_DIR=str(run_dir), PYTHONPATH=str(code))
    command = [sys.executable, "-m", "lifecycle", "simulate", "--start", start, "--end", end,
               "--report-dir", str(report)]  # fmt: skip
    done = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} (in {code}) failed:\n{done.stderr[-3000:]}")
    return json.loads((report / "summary.json").read_text())["run"]


def segment_table(start: str, end: str, runs: dict[str, dict]) -> Table:
    names = list(runs)
    first = runs[names[0]]
    table = Table(title=f"simulation {start} .. {end}: {first['ticks']:,} ticks, "
                  f"{first['flights']:,} flights")  # fmt: skip
    table.add_column("phase")
    for name in names:
        table.add_column(f"{name} (s)", justify="right")
    if len(names) == 2:
        table.add_column(f"{names[0]} / {names[1]}", justify="right")
    rows = [(p, [runs[n]["phase_seconds"][p] for n in names]) for p in PHASES]
    rows.append(("wall", [runs[n]["wall_seconds"] for n in names]))
    for phase, values in rows:
        cells = [f"{v:,.1f}" for v in values]
        if len(values) == 2:
            cells.append(f"{values[0] / values[1]:.2f}x" if values[1] else "-")
        table.add_row(phase, *cells)
    return table


def bench_segment(data_dir: Path, segment: str, against: str | None) -> None:
    start, _, end = segment.partition(":")
    base = data_dir / "base"
    if not base.exists():  # prepared aside, then renamed: a killed bench leaves no half base
        staging = data_dir / "base.partial"
        prepare_base(staging)
        staging.rename(base)
    runs: dict[str, dict] = {}
    if against:
        with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as scratch:
            other = Path(scratch) / "code"
            subprocess.run(["git", "worktree", "add", "--detach", str(other), against],
                           cwd=ROOT, check=True, capture_output=True)  # fmt: skip
            try:
                runs[against] = run_segment(other, base, data_dir / "run-against", start, end)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(other)],
                               cwd=ROOT, check=False, capture_output=True)  # fmt: skip
    runs["this checkout"] = run_segment(ROOT, base, data_dir / "run-this", start, end)
    console.print(segment_table(start, end, runs))
    console.print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")


def phase_table(summary: dict) -> Table:
    run = summary["run"]
    phases = run["phase_seconds"]
    total = run["wall_seconds"]
    table = Table(title=f"June-December simulation: {run['ticks']:,} ticks, "
                  f"{run['flights']:,} flights served")  # fmt: skip
    for column in ("phase", "seconds", "share"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for name in PHASES:
        table.add_row(name, f"{phases[name]:,.0f}", f"{phases[name] / total:.0%}")
    table.add_row("total (wall)", f"{total:,.0f}", f"target 1,200 s: {total / 1200:.2f}x")
    if beside := run.get("baseline_retrain_seconds"):
        table.add_row("baseline retrains (beside the phases)", f"{beside:,.0f}", "")
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
    parser.add_argument("--segment", default=None, help="START:END, two ISO days: time these")
    parser.add_argument("--against", default=None, help="a git ref: time the segment on it too")
    args = parser.parse_args()
    if args.data_dir.resolve() == (ROOT / "data").resolve():
        parser.error("use a data dir of the bench's own, not ./data")
    if args.against and not args.segment:
        parser.error("--against compares segments: give --segment START:END")
    if args.segment:
        bench_segment(args.data_dir, args.segment, args.against)
        return 0
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
