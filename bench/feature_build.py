"""The feature build on DuckDB and on Spark (a standalone cluster), at 1x, 10x and 30x.

    .venv/bin/python bench/feature_build.py [--scales 1,10,30] [--through 2013-01-31]
        [--executor-memory 1g] [--driver-memory 1g] [--workdir DIR] [--keep]

For each scale, the raw layer is ingested once through ``--through`` with
``--scale N`` (N copies of the network, every key suffixed, so rows grow N-fold),
then every feature table is built from scratch (``build(full=True)``) by each
engine, each in its own process, from the same SQL files:

- **duckdb**: ``FeatureBuilder``, in-process DuckDB;
- **spark**: ``SparkFeatureBuilder`` (``FEASTLINE_ENGINE=spark``), the SQL
  transpiled by sqlglot, on a standalone master plus one worker with all cores
  of this machine, started here with Spark's own launcher.

Wall time is the build process's, from start to exit (imports and, for Spark,
the JVM and executor start-up included). CPU and peak memory are sampled every
0.2 s over the build process and its descendants (the Spark driver JVM) plus the
executor JVMs the worker starts for it (``bench/measured_run.py``, shared with
``bench/offline.py``): CPU is the sum of each process's last seen user+system
time, memory the peak of the summed RSS. The outputs of the two
engines are compared (rows per table, and every value, as the tests do). Not run
by the tests; the figures depend on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from measured_run import GB, run_measured, standalone_spark  # noqa: E402 (bench/, beside this)

console = Console()


@dataclass
class Run:
    engine: str
    scale: int
    wall: float
    cpu: float
    peak_gb: float
    rows: dict[str, int]


def _build_one(engine: str, data_dir: Path, master: str, driver: str, executor: str) -> None:
    """In the child: one full build; prints the rows per table as JSON."""
    from feature_repo.pipeline import feature_builder
    from feature_repo.settings import Settings

    settings = Settings(
        data_dir=data_dir,
        engine=engine,
        spark_master=master,
        spark_driver_memory=driver,
        spark_executor_memory=executor,
    )
    summary = feature_builder(settings).build(full=True)
    print(json.dumps(summary.rows))


def _build(
    command: list[str], env: dict[str, str], log: Path, worker: psutil.Process | None
) -> tuple[float, float, float, dict[str, int]]:
    """One build, measured with its driver and executors; its rows per table."""
    rows_file = log.with_suffix(".rows.json")
    rows_file.unlink(missing_ok=True)
    run = run_measured(command, env, log, stdout=rows_file, executors_of=worker)
    if run.status != "ok":
        raise RuntimeError(f"{command} exited with {run.returncode}; see {log}")
    rows = json.loads(rows_file.read_text().strip().splitlines()[-1])
    return run.seconds, run.cpu_seconds, run.peak_bytes / GB, rows


def _compare(a: Path, b: Path, tables: list[str]) -> list[str]:
    import duckdb
    import pandas as pd

    problems = []
    for name in tables:
        frames = []
        for root in (a, b):
            glob = f"{root}/features/{name}/date=*/part-0.parquet"
            frame = duckdb.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning=false)")
            frame = frame.df()
            frames.append(frame.sort_values(list(frame.columns)).reset_index(drop=True))
        try:
            pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=True)
        except AssertionError as err:
            problems.append(f"{name}: {str(err).splitlines()[0]}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,10,30")
    parser.add_argument("--through", type=date.fromisoformat, default=date(2013, 1, 31))
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument("--executor-memory", default="2g")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--build-one", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_one:
        engine, data_dir, master, driver, executor = args.build_one
        _build_one(engine, Path(data_dir), master, driver, executor)
        return 0

    from feature_repo.pipeline import ingest
    from feature_repo.settings import Settings

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-feature-build-"))
    runs: list[Run] = []
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        with standalone_spark(workdir / "spark") as cluster:
            for scale in [int(s) for s in args.scales.split(",")]:
                base = workdir / f"x{scale}"
                raw = base / "raw-data"
                if not (raw / "raw").exists():
                    began = time.perf_counter()
                    ingest(Settings(data_dir=raw), args.through, build_features=False, scale=scale)
                    console.log(f"x{scale}: raw ingest {time.perf_counter() - began:.0f}s")
                dirs = {}
                for engine in ("duckdb", "spark"):
                    data_dir = base / engine
                    shutil.rmtree(data_dir, ignore_errors=True)
                    data_dir.mkdir(parents=True)
                    (data_dir / "raw").symlink_to(raw / "raw")
                    dirs[engine] = data_dir
                    command = [
                        sys.executable, __file__, "--build-one", engine, str(data_dir),
                        cluster.master_url, args.driver_memory, args.executor_memory,
                    ]  # fmt: skip
                    worker = cluster.worker if engine == "spark" else None
                    log = base / f"{engine}.log"
                    wall, cpu, peak, rows = _build(command, env, log, worker)
                    runs.append(Run(engine, scale, wall, cpu, peak, rows))
                    console.log(
                        f"x{scale} {engine}: {wall:.1f}s wall, {cpu:.1f}s CPU, {peak:.2f} GB"
                    )
                problems = _compare(dirs["duckdb"], dirs["spark"], sorted(runs[-1].rows))
                console.log(f"x{scale}: engines agree" if not problems else f"DIFFER: {problems}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    table = Table(title=f"Feature build, all six tables, full, through {args.through}")
    for column in ("scale", "engine", "rows", "wall s", "CPU s", "peak GB", "wall vs DuckDB"):
        table.add_column(column, justify="right")
    for run in runs:
        duck = next(r for r in runs if r.scale == run.scale and r.engine == "duckdb")
        table.add_row(
            f"{run.scale}x",
            run.engine,
            f"{sum(run.rows.values()):,}",
            f"{run.wall:.1f}",
            f"{run.cpu:.1f}",
            f"{run.peak_gb:.2f}",
            f"{run.wall / duck.wall:.1f}x",
        )
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
