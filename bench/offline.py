"""Offline retrieval: the training set built on DuckDB, on Spark and on Feast's Dask store.

    .venv/bin/python bench/offline.py [--scales 1,10,30] [--engines duckdb,spark]
        [--start 2013-01-01] [--end 2013-01-14] [--timeout 3600] [--dask-timeout S]
        [--memory-cap-gb 12] [--dask-chunk-rows 4096] [--driver-memory 1g]
        [--executor-memory 2g] [--workdir DIR] [--keep] [--markdown FILE]

Acceptance item 6 (DuckDB vs Dask) and issue 15's benchmark (DuckDB vs Spark). For
each scale, one data directory below ``--workdir`` (a temporary directory by
default, removed at the end unless ``--keep``; never ``./data``), set up by
``python -m feature_repo ingest --through END --scale N`` and ``apply``.
``--scale N`` is the documented replication
(``feature_repo.flights.source.replicate``): N copies of the whole network, copy
``k`` with every entity key suffixed ``~k``, so rows grow N-fold while each key's
history, and with it the cost of each point-in-time join, stays as in the real
data. Setup is timed but not part of the result; a data directory already
ingested through the window's end (``--keep`` and ``--workdir`` from an earlier
run) is reused.

The same training set (every labelled flight of ``--start``..``--end``, at
its prediction time; the feature service ``flight_delay_v1`` plus the ``source_ts``
audit columns of the leakage guard) is then built by each engine, one after the
other, each in its own process:

- **duckdb**: ``python -m training build-dataset``, our builder as users run it
  (``training/dataset.py``: time-ordered chunks, sources pruned to the day
  partitions a chunk can match, on-demand views on the columns they read), on the
  project's offline store, Feast's DuckDB store;
- **spark**: the same command with ``FEASTLINE_ENGINE=spark``: the same builder on
  Feast's Spark offline store, each chunk's point-in-time join run by a real
  standalone cluster that this script starts once for all scales (a master and one
  worker on loopback, with all of this machine's cores and 3 GB, started with
  Spark's own launcher: ``measured_run.standalone_spark``). Its data directory
  links to the same raw layer and feature tables and has its own Feast registry,
  applied with ``FEASTLINE_ENGINE=spark`` (its views read ``SparkSource`` objects);
- **dask**: one ``FeatureStore.get_historical_features(...).to_df()`` over all the
  entity rows, with the offline store overridden to ``type: file`` (Feast's Dask
  store, reading the same Parquet FileSources; the on-demand views run in Feast),
  then the same leakage guard, audit columns dropped and sort;
- **dask-chunked**: our builder's retrieval loop on the same file store (its
  chunks, pruned sources, on-demand views, guard and conversion, but not its check
  that no entity row was lost, which Feast's Dask store fails), with
  ``--dask-chunk-rows`` entity rows per Feast call. The Dask store merges every
  entity row with *all* of its key's history in the source before applying the
  TTL, in memory; at the builder's own 65,536 rows a chunk spans ~73 days of the
  1x data, about 110 million merged rows per hourly view, so Dask gets smaller
  chunks;
- **duckdb-single** (optional): the **dask** recipe on the DuckDB store, i.e. what
  the builder replaces.

Each engine writes its frame to Parquet. Wall time is the engine process's, start
to exit (imports, for Spark the driver JVM's start, and the Parquet write
included, the same for all). CPU and peak memory cover everything the engine runs
on (``bench/measured_run.py``, shared with ``bench/feature_build.py``): the
process tree (for Spark, the driver JVM) plus the executor JVMs the Spark worker
starts for it, sampled every 0.2 s; CPU sums each process's own user + system time,
peak memory is the peak of the summed RSS, and never below the engine process's
own ``ru_maxrss`` (for DuckDB and Dask, that process alone, as before). The
standalone master and worker daemons are not counted (they idle between
applications). Each row also gives the mean 1-minute load average over its run:
on a shared machine, wall time includes waiting for a core, CPU time does not.
Every engine runs under a timeout (``--timeout``; ``--dask-timeout`` for the Dask
engines) and a memory cap (``--memory-cap-gb``, on the summed RSS): a run that
exceeds either is killed and reported as ``timeout`` or ``memory cap`` with the
time and memory it reached, not as a crash. Ratios against a killed run are lower
bounds (``>=``).

**Window.** The default window is the first two weeks of 2013, not the year: on
this 2-core machine Spark took about 230 s for one Feast call (January at 1x, 26,052
entity rows), and the builder makes one call per 65,536 entity rows, so the year at
30x (150 calls) would take many hours, and even January at 30x most of one. The
window is the same for every engine; ``--start``/``--end`` widen it (the Dask
figures in docs/performance.md are for the whole year, ``--end 2013-12-31``).

**Agreement.** Each engine's Parquet is compared with **duckdb**'s in this
process with DuckDB (streaming, so the comparison never holds a frame in Python):
rows on each side, keys (``flight_id``, ``event_timestamp``) found on both sides
and on one side only, duplicate keys, and per column the values that differ.
Numbers are equal within a relative 1e-9 (NaN counts as null), nulls equal nulls,
timestamps and strings must be identical. Columns only one side has are listed.

**Targets** (judged at 10x, printed only when a Dask engine ran): DuckDB at least
5x faster than Dask, and under 1.5 GB peak. The speed target is judged against the
fastest Dask engine that finished; a Dask engine that was killed is reported as
such. Not run by the tests; the figures depend on the machine and on what else
runs on it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's packages (and tests/, for the Spark cluster)

from measured_run import GB, StandaloneSpark, run_measured, standalone_spark  # noqa: E402

# Two weeks: a window in which Spark's 30x run finishes on this 2-core machine (see
# the module's docstring); --start/--end widen it for every engine alike.
START, END = "2013-01-01", "2013-01-14"
ENGINES = ("duckdb", "spark", "dask", "dask-chunked", "duckdb-single")
DEFAULT_ENGINES = "duckdb,spark"
DASK_ENGINES = ("dask", "dask-chunked")
REFERENCE = "duckdb"
KEYS = ("flight_id", "event_timestamp")
RELATIVE_TOLERANCE = 1e-9
SPEED_TARGET = 5.0
MEMORY_TARGET_GB = 1.5
TARGET_SCALE = 10
# Wide enough for the table even when the output goes to a file (rich then assumes 80).
console = Console(width=max(Console().width, 160))


# -- measuring one process -----------------------------------------------------------
@dataclass
class Run:
    engine: str
    scale: int
    status: str  # ok, timeout, memory cap, failed
    seconds: float
    cpu_seconds: float
    peak_bytes: int
    load: float = 0.0  # the 1-minute load average, mean over the run
    rows: int | None = None
    output: Path | None = None
    agreement: Agreement | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def measure(
    argv: list[str],
    env: dict[str, str],
    log: Path,
    label: str,
    timeout: float = float("inf"),
    memory_cap: float = float("inf"),
    executors_of: Any = None,
) -> tuple[str, float, float, int, float]:
    """``measured_run.run_measured`` with a spinner. Returns status, wall s, CPU s, peak
    bytes (of the command's process tree, plus its Spark executors) and the mean 1-minute
    load average over the run (the machine is shared: it says how much waiting is in the
    wall time)."""
    loads = [os.getloadavg()[0]]
    with console.status(f"{label} ...") as spinner:

        def tick(elapsed: float, peak: int) -> None:
            loads.append(os.getloadavg()[0])
            spinner.update(f"{label}: {elapsed:,.0f} s, peak {peak / GB:.2f} GB (log: {log})")

        run = run_measured(
            argv, env, log, cwd=ROOT, timeout=timeout, memory_cap=memory_cap,
            executors_of=executors_of, on_tick=tick,
        )  # fmt: skip
    return run.status, run.seconds, run.cpu_seconds, run.peak_bytes, sum(loads) / len(loads)


def _log_tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# -- one scale: setup and engines ----------------------------------------------------
def _through(data_dir: Path) -> str | None:
    try:
        return json.loads((data_dir / "raw" / "_watermark.json").read_text())["through"]
    except (OSError, ValueError, KeyError):
        return None


def _setup_run(argv: list[str], env: dict[str, str], log: Path, label: str) -> float:
    status, took, *_ = measure(argv, env, log, label)
    if status != "ok":
        raise RuntimeError(f"{label} failed ({' '.join(argv[2:])}):\n{_log_tail(log)}")
    return took


def setup(scale: int, data_dir: Path, env: dict[str, str], log: Path, end: str) -> None:
    python = sys.executable
    commands = [[python, "-m", "feature_repo", "apply"]]
    through = _through(data_dir)
    if through is None or through < end:
        commands.insert(
            0, [python, "-m", "feature_repo", "ingest", "--through", end, "--scale", str(scale)]
        )
    else:
        console.print(f"x{scale}: reusing {data_dir} (ingested through {through})")
    seconds = sum(
        _setup_run(argv, env, log, f"x{scale} setup: {' '.join(argv[3:5])}") for argv in commands
    )
    console.print(f"x{scale} setup: {seconds:.0f} s")


def setup_spark(data_dir: Path, spark_env: dict[str, str], log: Path, scale: int) -> None:
    """The Spark engine's data directory: links to the same raw layer and feature tables,
    and its own Feast registry, whose views read them through SparkSources."""
    spark_dir = Path(spark_env["FEASTLINE_DATA_DIR"])
    spark_dir.mkdir(parents=True, exist_ok=True)
    for name in ("raw", "features"):
        if not (spark_dir / name).is_symlink():
            (spark_dir / name).symlink_to(data_dir / name, target_is_directory=True)
    apply = [sys.executable, "-m", "feature_repo", "apply"]
    seconds = _setup_run(apply, spark_env, log, f"x{scale} setup: apply (Spark)")
    console.print(f"x{scale} setup for Spark: {seconds:.0f} s")


def engine_argv(engine: str, out: Path, args: argparse.Namespace) -> list[str]:
    python = sys.executable
    window = ["--start", args.start, "--end", args.end]
    if engine in ("duckdb", "spark"):  # the same builder; the environment picks the store
        return [python, "-m", "training", "build-dataset", *window, "--out", str(out)]
    return [
        python, str(Path(__file__).resolve()), "--worker", engine, "--out", str(out),
        "--dask-chunk-rows", str(args.dask_chunk_rows), *window,
    ]  # fmt: skip


def spark_environment(
    env: dict[str, str], data_dir: Path, cluster: StandaloneSpark, args: argparse.Namespace
) -> dict[str, str]:
    return dict(
        env,
        FEASTLINE_DATA_DIR=str(data_dir),
        FEASTLINE_ENGINE="spark",
        SPARK_MASTER=cluster.master_url,
        SPARK_LOCAL_IP="127.0.0.1",  # the driver on loopback, as the cluster is
        FEASTLINE_SPARK_DRIVER_MEMORY=args.driver_memory,
        FEASTLINE_SPARK_EXECUTOR_MEMORY=args.executor_memory,
    )


def bench_scale(
    scale: int, workdir: Path, args: argparse.Namespace, cluster: StandaloneSpark | None
) -> list[Run]:
    folder = workdir / f"x{scale}"
    data_dir = folder / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log = folder / "bench.log"
    env = dict(os.environ, FEASTLINE_DATA_DIR=str(data_dir), FEASTLINE_LOG_LEVEL="WARNING")
    env.pop("REDIS_URL", None)  # the online store plays no part; keep it embedded
    env.pop("FEASTLINE_ENGINE", None)  # DuckDB unless the engine says otherwise
    setup(scale, data_dir, env, log, args.end)
    spark_env = None
    if cluster is not None:
        spark_env = spark_environment(env, folder / "spark-data", cluster, args)
        setup_spark(data_dir, spark_env, log, scale)
    cap = int(args.memory_cap_gb * GB)
    runs: list[Run] = []
    for engine in args.engines:
        out = folder / f"{engine}.parquet"
        out.unlink(missing_ok=True)
        timeout = args.dask_timeout if engine in DASK_ENGINES else args.timeout
        spark = engine == "spark"
        if spark and (cluster is None or spark_env is None):
            raise RuntimeError("the spark engine needs the standalone cluster main() starts")
        status, seconds, cpu, peak, load = measure(
            engine_argv(engine, out, args),
            spark_env if spark and spark_env else env,
            log,
            f"x{scale} {engine}",
            timeout,
            cap,
            executors_of=cluster.worker if spark and cluster else None,
        )
        run = Run(engine, scale, status, seconds, cpu, peak, load)
        if run.ok:
            run.output = out
            run.rows = _parquet_rows(out)
        elif status == "failed":
            console.print(f"[red]x{scale} {engine} failed[/red]:\n{_log_tail(log)}")
        console.print(
            f"x{scale} {engine}: {status}, {seconds:,.1f} s ({cpu:,.1f} s CPU), "
            f"peak {peak / GB:.2f} GB, load {load:.1f}"
            + (f", {run.rows:,} rows" if run.rows is not None else "")
        )
        runs.append(run)
    reference = next((r for r in runs if r.engine == REFERENCE and r.ok), None)
    for run in runs:
        if reference is not None and run is not reference and run.ok:
            with console.status(f"x{scale}: comparing {run.engine} with {REFERENCE}"):
                run.agreement = compare(reference.output, run.output, folder)
    return runs


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


# -- agreement -----------------------------------------------------------------------
@dataclass
class Agreement:
    rows: tuple[int, int]  # reference, other
    matched: int  # keys present on both sides
    only: tuple[int, int]  # keys on one side only: reference, other
    duplicates: tuple[int, int]  # rows beyond the first per key
    mismatches: dict[str, int] = field(default_factory=dict)  # column -> differing values
    examples: dict[str, str] = field(default_factory=dict)
    columns_only: tuple[list[str], list[str]] = ([], [])
    compared: int = 0  # columns compared

    @property
    def mismatched_values(self) -> int:
        return sum(self.mismatches.values())


NUMERIC = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "BOOLEAN",
)  # fmt: skip


def _kind(sql_type: str) -> str:
    if sql_type in NUMERIC or sql_type.startswith("DECIMAL"):
        return "number"
    if sql_type.startswith(("TIMESTAMP", "DATE")):
        return "time"
    return "text"


def _differs(column: str, kind: str) -> str:
    """A 0/1 SQL expression: do ``a.column`` and ``b.column`` differ?"""
    a, b = f'a."{column}"', f'b."{column}"'
    if kind == "number":
        x = f"CASE WHEN isnan({a}::DOUBLE) THEN NULL ELSE {a}::DOUBLE END"
        y = f"CASE WHEN isnan({b}::DOUBLE) THEN NULL ELSE {b}::DOUBLE END"
        return (
            f"CASE WHEN ({x}) IS NULL AND ({y}) IS NULL THEN 0 "
            f"WHEN ({x}) IS NULL OR ({y}) IS NULL THEN 1 "
            f"WHEN ({x}) = ({y}) THEN 0 "
            f"WHEN abs(({x}) - ({y})) <= {RELATIVE_TOLERANCE} * greatest(abs({x}), abs({y})) "
            "THEN 0 ELSE 1 END"
        )
    if kind == "time":
        return f"({a}::TIMESTAMPTZ IS DISTINCT FROM {b}::TIMESTAMPTZ)::INT"
    return f"({a}::VARCHAR IS DISTINCT FROM {b}::VARCHAR)::INT"


def _ignored(column: str) -> bool:
    # pandas' index, which Feast's Dask store sometimes carries into its Arrow output.
    return column.startswith("__index_level_")


def compare(reference: Path, other: Path, scratch: Path) -> Agreement:
    """Compare two training sets on disk, by key, without loading either into Python."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET memory_limit = '2GB'")
        con.execute(f"SET temp_directory = '{_sql_quote(scratch / 'duckdb-tmp')}'")
        types: dict[str, dict[str, str]] = {}
        for name, path in (("a", reference), ("b", other)):
            con.execute(
                f"CREATE VIEW {name} AS SELECT * REPLACE "
                f"(event_timestamp::TIMESTAMPTZ AS event_timestamp) "
                f"FROM read_parquet('{_sql_quote(path)}')"
            )
            types[name] = {
                column: sql_type
                for column, sql_type, *_ in con.execute(f"DESCRIBE {name}").fetchall()
                if not _ignored(column)
            }
        keys = ", ".join(KEYS)
        counts = {}
        for name in ("a", "b"):
            rows, distinct = con.execute(
                f"SELECT (SELECT count(*) FROM {name}), "
                f"(SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {name}))"
            ).fetchall()[0]
            counts[name] = (int(rows), int(distinct))
        matched = con.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM a) "
            f"JOIN (SELECT DISTINCT {keys} FROM b) USING ({keys})"
        ).fetchall()[0][0]
        common = [c for c in types["a"] if c in types["b"] and c not in KEYS]
        kinds = {}
        for column in common:
            kind_a, kind_b = _kind(types["a"][column]), _kind(types["b"][column])
            kinds[column] = kind_a if kind_a == kind_b else "text"
        mismatches: dict[str, int] = {}
        examples: dict[str, str] = {}
        if common:
            selects = []
            for column in common:
                differs = _differs(column, kinds[column])
                selects.append(f"sum({differs})::BIGINT")
                selects.append(
                    f"any_value(a.flight_id || ': ' || coalesce(a.\"{column}\"::VARCHAR, 'null') "
                    f"|| ' vs ' || coalesce(b.\"{column}\"::VARCHAR, 'null')) "
                    f"FILTER (WHERE ({differs}) = 1)"
                )
            values = con.execute(
                f"SELECT {', '.join(selects)} FROM a JOIN b USING ({keys})"
            ).fetchall()[0]
            for i, column in enumerate(common):
                count = int(values[2 * i] or 0)
                if count:
                    mismatches[column] = count
                    examples[column] = str(values[2 * i + 1])
        return Agreement(
            rows=(counts["a"][0], counts["b"][0]),
            matched=int(matched),
            only=(counts["a"][1] - int(matched), counts["b"][1] - int(matched)),
            duplicates=(counts["a"][0] - counts["a"][1], counts["b"][0] - counts["b"][1]),
            mismatches=mismatches,
            examples=examples,
            columns_only=(
                [c for c in types["a"] if c not in types["b"]],
                [c for c in types["b"] if c not in types["a"]],
            ),
            compared=len(common),
        )
    finally:
        con.close()


def _sql_quote(path: Path) -> str:
    return str(path).replace("'", "''")


# -- engines (run as ``--worker``, in their own process) ----------------------------
def _open_store(offline_store: str) -> Any:
    """The project's store (``feature_repo.store.open_store``) with another offline store."""
    os.environ.setdefault("FEAST_USAGE", "False")
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    from feature_repo.feast_compat import apply_patches
    from feature_repo.settings import FEATURE_REPO_DIR, Settings
    from feature_repo.store import quiet_feast_warnings, repo_config_dict

    quiet_feast_warnings()
    apply_patches()
    settings = Settings.from_env()
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    raw = repo_config_dict(settings)
    raw["offline_store"] = {"type": offline_store}
    return FeatureStore(config=RepoConfig(repo_path=FEATURE_REPO_DIR, **raw))


def _single_call(offline_store: str, start: date, end: date) -> Any:
    """The whole training set from one ``get_historical_features(...).to_df()``."""
    from feature_repo.settings import Settings
    from feature_repo.store import dataset_module
    from training.dataset import SORT_KEYS, check_leakage, entity_rows, feature_refs

    settings = Settings.from_env()
    store = _open_store(offline_store)
    refs, audit_refs = feature_refs(store, dataset_module(settings).FEATURE_SERVICE_NAME)
    audit_columns = [ref.replace(":", "__") for ref in audit_refs]
    entities = entity_rows(settings, start, end)
    print(f"{len(entities):,} entity rows; one get_historical_features call", flush=True)
    job = store.get_historical_features(
        entity_df=entities,
        features=refs + audit_refs,
        full_feature_names=True,
        filter_by_created_timestamp=True,
    )
    del entities
    frame = job.to_df()
    check_leakage(frame, audit_columns)
    frame = frame.drop(columns=audit_columns)
    return frame.sort_values(SORT_KEYS, kind="stable", ignore_index=True)


def _chunked(offline_store: str, start: date, end: date, chunk_rows: int) -> Any:
    """Our builder's retrieval loop (``training.dataset._retrieve``) on another offline
    store and chunk size: the same entity file, chunks, pruned sources, on-demand
    views and leakage guard. One check is left out: the builder
    refuses a chunk whose result lost entity rows, and Feast's Dask store loses some
    (the agreement columns count them), so here they are only counted."""
    import pyarrow as pa

    import training.dataset as builder
    from feature_repo.settings import Settings
    from feature_repo.store import dataset_module

    settings = Settings.from_env()
    store = _open_store(offline_store)
    refs, audit_refs = builder.feature_refs(store, dataset_module(settings).FEATURE_SERVICE_NAME)
    audit_columns = [ref.replace(":", "__") for ref in audit_refs]
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-offline.", dir=settings.state_dir))
    lost = 0
    try:
        as_of = builder.resolve_as_of(settings, end, None)
        entities = builder._EntityFile(settings, start, end, as_of, scratch / "entities.parquet")
        plan = builder._plan(store, refs + audit_refs)
        sources = builder._PrunedSources(plan.views, scratch)
        tally = builder._LeakageTally(audit_columns)
        parts: list[pa.Table] = []
        for i, (first, last) in enumerate(entities.chunks(chunk_rows)):
            chunk = entities.read(first, last)
            table = builder._fetch_chunk(
                store, sources, plan, chunk, (first, last), scratch / f"chunk-{i:05d}"
            )
            lost += len(chunk) - table.num_rows
            table = table.drop_columns([c for c in table.column_names if _ignored(c)])
            tally.add(table)
            parts.append(builder.sorted_rows(table.drop_columns(audit_columns)))
            del table, chunk
            if i % 20 == 0:
                print(f"chunk {i}: through {last:%Y-%m-%d}, {lost:,} rows lost so far", flush=True)
        entities.close()
        tally.check()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{offline_store}: {lost:,} entity rows missing from the results")
    # The Dask store types an integer feature as double in a chunk where it has nulls
    # (pandas), and as int64 in another; the builder's concatenation wants one type.
    schema = pa.unify_schemas([part.schema for part in parts], promote_options="permissive")
    for i, part in enumerate(parts):
        parts[i] = part.cast(pa.schema([schema.field(name) for name in part.schema.names]))
    table = pa.concat_tables(parts, promote_options="default")
    parts.clear()
    return table.to_pandas(split_blocks=True, self_destruct=True)


def worker(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from feature_repo.atomic_io import write_parquet

    start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
    started = time.perf_counter()
    if args.worker == "dask":
        frame = _single_call("file", start, end)
    elif args.worker == "duckdb-single":
        frame = _single_call("duckdb", start, end)
    elif args.worker == "dask-chunked":
        frame = _chunked("file", start, end, args.dask_chunk_rows)
    else:
        raise SystemExit(f"unknown engine {args.worker!r}")
    built = time.perf_counter() - started
    write_parquet(pa.Table.from_pandas(frame, preserve_index=False), args.out)
    print(f"{args.worker}: {len(frame):,} rows built in {built:.1f} s -> {args.out}")
    return 0


# -- the report ----------------------------------------------------------------------
HEADERS = (
    "scale", "engine", "status", "rows", "wall s", "CPU s", "peak GB",
    "wall vs DuckDB", "CPU vs DuckDB", "load", "keys agreeing", "only one side",
    "value mismatches",
)  # fmt: skip
NUMBER_HEADERS = {"rows", "wall s", "CPU s", "peak GB", "wall vs DuckDB", "CPU vs DuckDB", "load"}


def _ratio(reference: Run | None, run: Run, measure: str) -> str:
    """This run's wall or CPU time over the reference's (duckdb's), at the same scale."""
    if reference is None or not reference.ok or run is reference:
        return ""
    ratio = getattr(run, measure) / getattr(reference, measure)
    if run.ok:
        return f"{ratio:.1f}x"
    return f">= {ratio:.1f}x"


def _row(run: Run, reference: Run | None) -> list[str]:
    status = run.status
    if run.status in ("timeout", "memory cap"):
        status = f"killed: {run.status}"
    agreement = run.agreement
    if run.engine == REFERENCE:
        keys = only = values = "reference" if run.ok else ""
    elif agreement is None:
        keys = only = values = ""
    else:
        keys = f"{agreement.matched:,} / {agreement.rows[0]:,}"
        only = f"{agreement.only[0]:,} / {agreement.only[1]:,}"
        values = f"{agreement.mismatched_values:,}"
        if agreement.mismatches:
            values += f" in {len(agreement.mismatches)} of {agreement.compared} cols"
        else:
            values += f" ({agreement.compared} cols)"
    return [
        f"x{run.scale}",
        run.engine,
        status,
        f"{run.rows:,}" if run.rows is not None else "",
        f"{run.seconds:,.1f}",
        f"{run.cpu_seconds:,.1f}",
        f"{run.peak_bytes / GB:.2f}",
        _ratio(reference, run, "seconds"),
        _ratio(reference, run, "cpu_seconds"),
        f"{run.load:.1f}",
        keys,
        only,
        values,
    ]


def _rows(runs: list[Run]) -> list[list[str]]:
    out = []
    for scale in dict.fromkeys(r.scale for r in runs):
        here = [r for r in runs if r.scale == scale]
        reference = next((r for r in here if r.engine == REFERENCE), None)
        out.extend(_row(r, reference) for r in here)
    return out


def _details(runs: list[Run]) -> list[str]:
    lines = []
    for run in runs:
        agreement = run.agreement
        if agreement is None:
            continue
        where = f"x{run.scale} {run.engine} vs {REFERENCE}"
        if agreement.duplicates != (0, 0):
            lines.append(f"{where}: duplicate keys {agreement.duplicates[0]:,} / "
                         f"{agreement.duplicates[1]:,}")  # fmt: skip
        for side, columns in zip((REFERENCE, run.engine), agreement.columns_only, strict=True):
            if columns:
                lines.append(f"{where}: columns only in {side}: {', '.join(columns)}")
        for column, count in agreement.mismatches.items():
            lines.append(f"{where}: {column}: {count:,} differ (e.g. {agreement.examples[column]})")
    return lines


def verdict(runs: list[Run]) -> str | None:
    """One line: do the Dask targets hold at 10x? None when no Dask engine ran."""
    if not any(r.engine in DASK_ENGINES for r in runs):
        return None
    here = [r for r in runs if r.scale == TARGET_SCALE]
    ours = next((r for r in here if r.engine == REFERENCE), None)
    if ours is None:
        return f"targets are judged at x{TARGET_SCALE}, which this run did not measure"
    if not ours.ok:
        return f"targets: x{TARGET_SCALE} {REFERENCE} did not finish ({ours.status})"
    parts = []
    finished = [r for r in here if r.engine in DASK_ENGINES and r.ok]
    killed = [r for r in here if r.engine in DASK_ENGINES and r.status in ("timeout", "memory cap")]
    if finished:
        best = min(finished, key=lambda r: r.seconds)
        ratio = best.seconds / ours.seconds
        holds = "holds" if ratio >= SPEED_TARGET else "FAILS"
        parts.append(
            f"speed {holds}: DuckDB {ratio:.1f}x faster than the fastest Dask run that "
            f"finished ({best.engine}, {best.seconds:,.0f} s vs {ours.seconds:,.0f} s; "
            f"target >= {SPEED_TARGET:g}x)"
        )
    elif killed:
        bound = max(r.seconds for r in killed) / ours.seconds
        holds = "holds" if bound >= SPEED_TARGET else "not settled"
        parts.append(f"speed {holds}: no Dask run finished; DuckDB >= {bound:.1f}x faster")
    else:
        parts.append("speed: no Dask engine was measured")
    for run in killed:
        parts.append(
            f"{run.engine} killed ({run.status}) after {run.seconds:,.0f} s at "
            f"{run.peak_bytes / GB:.1f} GB"
        )
    gb = ours.peak_bytes / GB
    holds = "holds" if gb < MEMORY_TARGET_GB else "FAILS"
    parts.append(f"memory {holds}: DuckDB peak {gb:.2f} GB (target < {MEMORY_TARGET_GB:g} GB)")
    return f"targets at x{TARGET_SCALE}: " + "; ".join(parts)


def markdown(title: str, rows: list[list[str]], notes: list[str]) -> str:
    lines = [f"**{title}**", "", "| " + " | ".join(HEADERS) + " |"]
    lines.append("|" + "|".join("---:" if h in NUMBER_HEADERS else ":---" for h in HEADERS) + "|")
    lines.extend("| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in rows)
    lines.append("")
    lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines) + "\n"


def report(runs: list[Run], args: argparse.Namespace) -> None:
    engines = ", ".join(dict.fromkeys(r.engine for r in runs))
    title = (
        f"training set {args.start}..{args.end} ({engines}); {os.cpu_count()} CPUs, "
        f"memory cap {args.memory_cap_gb:g} GB"
    )
    rows = _rows(runs)
    table = Table(title=title)
    for header in HEADERS:
        justify = "left" if header in ("engine", "status") else "right"
        table.add_column(header, justify=justify, no_wrap=True)
    scales = [r[0] for r in rows]
    for i, row in enumerate(rows):
        table.add_row(*row, end_section=i + 1 < len(rows) and scales[i + 1] != scales[i])
    console.print(table)
    targets = verdict(runs)
    notes = [
        "peak GB: the engine's process tree (for Spark the driver JVM too) plus the executor "
        "JVMs the Spark worker started for it, summed; wall/CPU vs DuckDB: this engine's / "
        "duckdb's (>= when it was killed); keys agreeing: (flight_id, event_timestamp) keys "
        "found in both / duckdb's rows; only one side: duckdb / this engine; load: the "
        "1-minute load average, mean over the run",
        *_details(runs),
        *([targets] if targets else []),
    ]
    for note in notes:
        console.print(note)
    if args.markdown:
        Path(args.markdown).write_text(markdown(title, rows, notes))
        console.print(f"markdown: {args.markdown}")


# -- main ----------------------------------------------------------------------------
def _engines(text: str) -> list[str]:
    engines = [e.strip() for e in text.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown engine(s) {unknown}; choose from {ENGINES}")
    # The reference runs first, so the others are compared with it.
    return sorted(engines, key=lambda e: e != REFERENCE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", default="1,10,30", help="comma-separated data scales")
    parser.add_argument(
        "--engines",
        type=_engines,
        default=_engines(DEFAULT_ENGINES),
        help=f"comma-separated, from {', '.join(ENGINES)} (default {DEFAULT_ENGINES})",
    )
    parser.add_argument("--start", default=START, help="first UTC day of the training set")
    parser.add_argument("--end", default=END, help="last UTC day (and the ingest's --through)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per engine run")
    parser.add_argument(
        "--dask-timeout", type=float, default=None, help="seconds per Dask run (default --timeout)"
    )
    parser.add_argument(
        "--memory-cap-gb", type=float, default=12, help="kill an engine above this RSS (summed)"
    )
    parser.add_argument(
        "--dask-chunk-rows", type=int, default=4_096, help="entity rows per call, dask-chunked"
    )
    parser.add_argument("--driver-memory", default="1g", help="Spark driver memory")
    parser.add_argument("--executor-memory", default="2g", help="Spark executor memory")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary dir")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs and outputs")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    args.dask_timeout = args.dask_timeout or args.timeout
    # A run started in the background ignores SIGINT: let SIGTERM stop it cleanly too
    # (the engine killed, the Spark daemons stopped), as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scales = [int(s) for s in args.scales.split(",") if s.strip()]

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="feastline-bench-offline-"))
    workdir.mkdir(parents=True, exist_ok=True)
    console.print(f"workdir {workdir}; engines {', '.join(args.engines)}; scales {scales}")
    runs: list[Run] = []
    try:
        with contextlib.ExitStack() as stack:
            cluster = None
            if "spark" in args.engines:
                with console.status("starting a standalone Spark master and worker"):
                    cluster = stack.enter_context(standalone_spark(workdir / "spark"))
                console.print(f"Spark: {cluster.master_url}, {os.cpu_count()} cores, 3g worker")
            for scale in scales:
                runs.extend(bench_scale(scale, workdir, args, cluster))
    except RuntimeError as err:
        console.print(f"[red]error:[/red] {err}")
        return 1
    finally:
        if runs:
            report(runs, args)
        if args.keep:
            console.print(f"kept {workdir}")
        elif args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            for folder in [f"x{scale}" for scale in scales] + ["spark"]:
                shutil.rmtree(workdir / folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
