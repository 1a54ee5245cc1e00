"""Materialization into Redis: throughput against a raw ceiling, and cost per run vs history.

    .venv/bin/python bench/materialize.py [--redis-url redis://127.0.0.1:6379/9] [--quick]

Everything runs in a temporary data directory (``Settings(data_dir=...)``), never in
``./data``. By default the script starts its own ``redis-server`` on a free loopback
port (no persistence) and stops it at the end; ``--redis-url`` uses an existing
server instead: the URL's db for Feast and the next three dbs for the comparisons
(all four are flushed). Not run by the tests. The machine may be shared and noisy,
so every ratio printed compares measurements taken in the same run.

**Throughput (acceptance item 7): what counts as a row.** Feast 0.67's local engine
(and ``feature_repo.feast_engine.WindowEngine``, the local engine the project
configures) reduces a window to the newest row per entity before writing
(``MaterializationTask.only_latest`` defaults to true and no setting reaches it;
``pull_latest_features`` only chooses whether the read or a later pandas step does
it). So no materialization of "the full year" writes every row of the year: a window
writes at most one row per entity. Crediting Feast with the year's *source* rows
while the ceiling writes all of them would count writes Feast never makes, so the
measure here is **rows Feast actually wrote / seconds**, checked against Redis's own
HSET counter, and the ceilings write exactly those rows. Two workloads, both through
:class:`feature_repo.materialize.Materializer` into an empty database:

- *year, one window*: ``Materializer.backfill(2013-01-01, 2014-01-01)``, one window
  per view (the newest value per entity over the year); best of ``--repeats``;
- *year, replayed*: ``Materializer.run(now=...)`` every ``--replay-tick`` from
  2013-01-01 to 2014-01-01, as the scheduler would; far more rows get written.

Feast's time is split: the whole run (our window bookkeeping plus Feast), Feast's
engine alone (the batch engine's ``materialize``, one call per view and window:
read, dedup, conversion, write), within it the engine's *read* of the window
(``WindowEngine.read_window``), and the *write stage* alone (Feast's
Arrow-to-proto conversion plus ``RedisOnlineStore.online_write_batch``), which is the
only part that ``online_write_batch_size`` and ``skip_dedup`` change. The stages are
timed by wrapping those functions with a clock, nothing else. ``run/A`` is
materialization as users get it (the acceptance ratio); ``write/A`` isolates what
Feast's write settings can change. An interleaved A/B (``--write-rounds``) then
replays the rows the engine produced in the one-window backfill through Feast's own
conversion and ``online_write_batch`` for each combination of
``online_write_batch_size`` (10000, 1000) and ``skip_dedup``, next to both ceilings.

**Two ceilings**, both raw redis-py pipelined writes of the same rows in Feast's
layout: key = serialized entity key + project; one hash per key with
``mmh3("{view}:{feature}")`` -> serialized ``ValueProto`` and ``_ts:{view}`` ->
serialized ``Timestamp``; plus the ``EXPIRE key_ttl_seconds`` Feast sends per row;
pipelines of ``--ceiling-batch`` rows, into their own database. The rows are selected
once, as an Arrow table per view (DuckDB: the newest row per entity in each window).

- **ceiling A, pipeline only**: the payloads are built and serialized *outside* the
  timed section (their cost is printed separately): the pipeline alone, the highest
  bar. HSET without EXPIRE is printed too.
- **ceiling B, build + pipeline**: the same pipelines, timed together with building
  the payloads from the Arrow rows (columns to Python once, the entity key
  serialized once per entity, a ``Timestamp`` and a ``ValueProto`` per feature
  serialized per row): what any raw redis-py writer producing Feast's layout from
  those rows must do.

After each workload the Feast and ceiling databases are compared key by key and must
be byte-identical, which shows the rows and the layout are the same.

**Cost per run vs history.** Ingest through the end of month M (``--depths``), let
one ``Materializer.run`` catch up, then time ``--days`` daily runs, each ingesting
its new day first as in production. The same windows then go through Feast's engine
twice more, into databases that received the same writes (so the Redis work is the
same and only the source read differs): with the view's registered source
(``date=*``: every day on disk, *unpruned*), and with a source holding only the
window's day partitions, replaced wherever Feast reads it (*pruned*). The
Materializer's own engine time is shown next to both, with the paths its engine
actually read.

**Intraday: a day replayed every 15 minutes** (``--intraday-depths``,
``--intraday-tick``). In a data directory of its own, ingest through the end of month
M, catch up at the next midnight, then run the pipeline's step
(``Materializer.run(now)``: ingest what became knowable since the last run, build the
features to it, materialize to it) at every tick of the next day, as ``schedule
--every 15m`` and the serving replay do. Per depth: the mean, p95 and worst run, each
stage's mean, and the day's total; it must stay flat as history grows from 1 to 11
months. ``--intraday-only`` runs just this workload.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import duckdb
import redis
from rich.console import Console
from rich.table import Table

from feature_repo.clock import NOW_ENV, parse_duration
from feature_repo.materialize import Materializer, RunResult
from feature_repo.pipeline import apply, ingest
from feature_repo.settings import FEATURE_REPO_DIR, Settings
from feature_repo.store import open_store, repo_config_dict

YEAR_START = datetime(2013, 1, 1, tzinfo=UTC)
YEAR_END = datetime(2014, 1, 1, tzinfo=UTC)
# Keys the Materializer keeps next to the features (marker, lock): not feature rows.
OWN_KEY_PREFIX = b"feastline:"
WindowList = list[tuple[datetime, datetime]]

console = Console()
if not console.is_terminal:
    console = Console(width=200)  # a log file or pipe: keep the tables unwrapped


# -- Redis -------------------------------------------------------------------------
class OwnRedis:
    """A throwaway redis-server on a free loopback port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def __enter__(self) -> OwnRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server not found; install it or pass --redis-url")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url(0), socket_connect_timeout=0.2).ping()
                return self
            except redis.exceptions.RedisError:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def url_with_db(url: str, db: int) -> str:
    return urlparse(url)._replace(path=f"/{db}").geturl()


def hset_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_hset", {}).get("calls", 0))


def snapshot(client: redis.Redis) -> dict[bytes, tuple[dict[bytes, bytes], bool]]:
    """Every feature key: its hash, and whether it carries a TTL."""
    keys = [k for k in client.scan_iter(count=5_000) if not k.startswith(OWN_KEY_PREFIX)]
    out: dict[bytes, tuple[dict[bytes, bytes], bool]] = {}
    for i in range(0, len(keys), 2_000):
        chunk = keys[i : i + 2_000]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.hgetall(key)
            pipe.ttl(key)
        replies = pipe.execute()
        for j, key in enumerate(chunk):
            out[key] = (replies[2 * j], replies[2 * j + 1] > 0)
    return out


def same_content(*clients: redis.Redis) -> tuple[bool, int]:
    first, *others = [snapshot(c) for c in clients]
    return all(other == first for other in others), len(first)


# -- timing Feast's stages (a clock around calls, nothing else) --------------------
@dataclass
class StageClock:
    """Seconds per stage (``engine``, ``read``, ``convert``, ``write``) and view; paths read."""

    seconds: dict[str, dict[str, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    paths: set[str] = field(default_factory=set)
    # (feature view, Arrow batch) exactly as Feast's engine handed them to the write stage
    batches: list[tuple[Any, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.seconds.clear()
        self.paths.clear()
        self.batches.clear()

    def total(self, stage: str) -> float:
        return sum(self.seconds.get(stage, {}).values())

    def _timed(self, stage: str, fn: Callable[..., Any], view_of: Callable[..., str]) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage][view_of(*args, **kwargs)] += time.perf_counter() - started

        return wrapper

    @contextmanager
    def installed(self, store: Any) -> Iterator[None]:
        from feature_repo import feast_engine

        provider = store._get_provider()
        online, engine = provider.online_store, provider.batch_engine
        convert = feast_engine.online_rows

        def keep(batch: Any, view: Any, *args: Any) -> Any:
            self.batches.append((view, batch))
            return convert(batch, view, *args)

        # Feast's engine, per task: the wait for its window's read (which ran ahead on
        # a second thread), the conversion and the write.
        run = feast_engine._Plan.run
        feast_engine._Plan.run = self._timed(  # type: ignore[method-assign]
            "engine", run, lambda plan: plan.task.feature_view.name
        )
        online.online_write_batch = self._timed(
            "write",
            online.online_write_batch,
            lambda *a, **k: (k["table"] if "table" in k else a[1]).name,
        )
        feast_engine.online_rows = self._timed("convert", keep, lambda *a, **k: a[1].name)
        read_window = getattr(engine, "read_window", None)
        source_view = {v.batch_source.name: v.name for v in store.list_feature_views()}
        if read_window is not None:  # feature_repo.feast_engine: what each window read

            def spy_read(source: Any, *args: Any) -> Any:
                files = args[-1]
                self.paths.update(files if files is not None else [source.path])
                return read_window(source, *args)

            engine.read_window = self._timed(
                "read", spy_read, lambda source, *a, **k: source_view[source.name]
            )
        try:
            yield
        finally:
            # The instance attributes shadow the class methods; deleting them restores those.
            feast_engine._Plan.run = run  # type: ignore[method-assign]
            del online.online_write_batch
            if read_window is not None:
                del engine.read_window
            feast_engine.online_rows = convert


# -- the ceiling: the same rows, pre-serialized, raw pipelined writes --------------
VALUE_FIELD = {
    "DOUBLE": "double_val",
    "FLOAT": "float_val",
    "INT64": "int64_val",
    "INT32": "int32_val",
    "STRING": "string_val",
    "BOOL": "bool_val",
}


@dataclass
class Payload:
    """One view's rows as Feast sends them: (redis key, hash mapping); and their source.

    ``table`` is the Arrow selection the rows were built from (the newest row per
    entity in each window, in window order); ``build`` turns it into ``rows``. The
    pipeline-only ceiling writes ``rows`` prepared beforehand; the build-inclusive
    ceiling times ``build(table)`` and the write together.
    """

    view: str
    table: Any
    build: Callable[[Any], list[tuple[bytes, dict[bytes, bytes]]]]
    rows: list[tuple[bytes, dict[bytes, bytes]]]
    serialize_seconds: float


def payload_builder(
    store: Any, view: Any
) -> Callable[[Any], list[tuple[bytes, dict[bytes, bytes]]]]:
    """A raw writer's work to put Arrow rows into Feast's Redis layout.

    Per row: the serialized entity key plus project (cached per entity), a serialized
    ``Timestamp`` under ``_ts:{view}``, and a serialized ``ValueProto`` per feature
    under ``mmh3("{view}:{feature}")`` (computed once per view); columns leave Arrow
    once each, as Python lists.
    """
    import pyarrow as pa
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _mmh3
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    from google.protobuf.timestamp_pb2 import Timestamp

    version = store.config.entity_key_serialization_version
    project = store.project.encode()
    keys = [e.name for e in view.entity_columns]
    key_kinds = [VALUE_FIELD[e.dtype.to_value_type().name] for e in view.entity_columns]
    features = [(f.name, VALUE_FIELD[f.dtype.to_value_type().name]) for f in view.features]
    field_keys = [_mmh3(f"{view.name}:{name}") for name, _ in features]
    ts_key = f"_ts:{view.name}".encode()
    micros = pa.timestamp("us", tz="UTC")

    def build(table: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
        redis_keys: dict[tuple[Any, ...], bytes] = {}
        entities = list(zip(*(table.column(k).to_pylist() for k in keys), strict=True))
        stamps = table.column("event_timestamp").cast(micros).cast(pa.int64()).to_pylist()
        columns = [table.column(name).to_pylist() for name, _ in features]
        rows = []
        for i, entity in enumerate(entities):
            if (redis_key := redis_keys.get(entity)) is None:
                values = [Value(**{k: v}) for k, v in zip(key_kinds, entity, strict=True)]
                proto = EntityKey(join_keys=keys, entity_values=values)
                redis_key = redis_keys[entity] = serialize_entity_key(proto, version) + project
            ts_us = stamps[i]
            stamp = Timestamp(seconds=ts_us // 1_000_000, nanos=ts_us % 1_000_000 * 1_000)
            mapping = {ts_key: stamp.SerializeToString()}
            for fkey, (_, kind), column in zip(field_keys, features, columns, strict=True):
                value = column[i]
                mapping[fkey] = (
                    Value() if value is None else Value(**{kind: value})
                ).SerializeToString()
            rows.append((redis_key, mapping))
        return rows

    return build


def ceiling_payloads(
    settings: Settings, store: Any, windows: dict[str, WindowList]
) -> list[Payload]:
    """The newest row per entity within each of a view's windows, for every online view.

    The same selection as Feast's engine (newest ``event_timestamp``, then ``created``);
    rows follow the windows' order, so the final state matches Feast's.
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    payloads = []
    for view in [v for v in store.list_feature_views() if v.online]:
        con.execute("CREATE OR REPLACE TABLE windows (w INTEGER, lo TIMESTAMPTZ, hi TIMESTAMPTZ)")
        con.executemany(
            "INSERT INTO windows VALUES (?, ?, ?)",
            [(i, lo, hi) for i, (lo, hi) in enumerate(windows.get(view.name, []))],
        )
        keys = [e.name for e in view.entity_columns]
        features = [f.name for f in view.features]
        glob = str(settings.features_dir / view.name / "date=*" / "part-0.parquet")
        table = con.sql(
            f"SELECT {', '.join(keys + features)}, event_timestamp FROM ("
            f"  SELECT s.*, w.w FROM read_parquet('{glob}') s JOIN windows w"
            "   ON s.event_timestamp >= w.lo AND s.event_timestamp <= w.hi"
            f"  QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)}, w.w"
            "    ORDER BY event_timestamp DESC, created DESC) = 1"
            f") ORDER BY w, {', '.join(keys)}"
        ).to_arrow_table()
        build = payload_builder(store, view)
        started = time.perf_counter()
        rows = build(table)
        payloads.append(Payload(view.name, table, build, rows, time.perf_counter() - started))
    con.close()
    return payloads


def write_raw(
    client: redis.Redis, rows: list[tuple[bytes, dict[bytes, bytes]]], batch: int, ttl: int | None
) -> float:
    """Seconds to write ``rows`` in pipelines of ``batch`` rows: HSET, plus EXPIRE if ``ttl``."""
    started = time.perf_counter()
    _pipelined(client, rows, batch, ttl)
    return time.perf_counter() - started


def build_and_write_raw(
    client: redis.Redis, payload: Payload, batch: int, ttl: int | None
) -> float:
    """Seconds to build ``payload``'s rows from its Arrow table and write them, as a raw
    writer starting from the same Arrow rows as Feast's write stage would."""
    started = time.perf_counter()
    _pipelined(client, payload.build(payload.table), batch, ttl)
    return time.perf_counter() - started


def _pipelined(
    client: redis.Redis, rows: list[tuple[bytes, dict[bytes, bytes]]], batch: int, ttl: int | None
) -> None:
    for i in range(0, len(rows), batch):
        pipe = client.pipeline(transaction=False)
        for key, mapping in rows[i : i + batch]:
            pipe.hset(key, mapping=mapping)
            if ttl:
                pipe.expire(key, ttl)
        pipe.execute()


# -- workloads ---------------------------------------------------------------------
@dataclass
class Throughput:
    name: str
    repeats: int
    batches: list[tuple[Any, Any]]
    payloads: list[Payload]
    runs: int
    rows: dict[str, int]
    run_seconds: dict[str, float]
    total_seconds: float
    stages: dict[str, dict[str, float]]
    ceiling_seconds: dict[str, float]
    build_ceiling_seconds: dict[str, float]
    hset_only_seconds: float
    serialize_seconds: float
    hsets: int
    identical: bool
    keys: int


@dataclass
class Depth:
    months: int
    days_on_disk: int
    runs: list[dict[str, float]]
    materializer_paths: set[str]

    def best(self, key: str) -> float:
        # Load from other work on the machine only ever adds time: the fastest run is
        # the least disturbed one.
        return min(r[key] for r in self.runs)

    def ratio(self, key: str) -> float:
        """Median over the runs of ``key`` / the pruned engine timed right next to it."""
        return statistics.median(r[key] / r["pruned_engine"] for r in self.runs)


class Bench:
    def __init__(self, args: argparse.Namespace, data_dir: Path, urls: list[str]) -> None:
        self.args = args
        self.settings = Settings(data_dir=data_dir, redis_url=urls[0])
        self.urls = urls
        self.clients = [redis.Redis.from_url(u) for u in urls]
        self.feast, self.ceiling, self.unpruned, self.pruned = self.clients
        self.stages = StageClock()
        self.scratch = data_dir.parent / "bench-scratch"
        self.scratch.mkdir(parents=True, exist_ok=True)

    def store(
        self, redis_url: str, batch_size: int | None = None, skip_dedup: bool | None = None
    ) -> Any:
        """A FeatureStore configured as the project does (store.py), on ``redis_url``,
        with Feast's write settings overridden when given (else by the command line)."""
        from feast import FeatureStore
        from feast.repo_config import RepoConfig

        open_store(self.settings)  # installs Feast's warning filters and the project's patches
        raw = repo_config_dict(self.settings.model_copy(update={"redis_url": redis_url}))
        batch_size = batch_size or self.args.online_write_batch_size
        skip_dedup = self.args.skip_dedup if skip_dedup is None else skip_dedup
        if batch_size:
            raw["materialization"]["online_write_batch_size"] = batch_size
        if skip_dedup is not None:
            raw["online_store"]["skip_dedup"] = skip_dedup
        if self.args.window_read:
            if not isinstance(raw.get("batch_engine"), dict):
                raise SystemExit("--window-read needs feature_repo.feast_engine as batch_engine")
            raw["batch_engine"] = {**raw["batch_engine"], "window_read": self.args.window_read}
        return FeatureStore(config=RepoConfig(repo_path=FEATURE_REPO_DIR, **raw))

    # -- Feast's write settings, A/B on the write stage -------------------------
    def write_settings(
        self, batches: list[tuple[Any, Any]], payloads: list[Payload]
    ) -> list[tuple[str, float]]:
        """Median seconds of the write stage per setting, and of the two ceilings.

        Replays the rows the engine produced through the engine's write
        (``feast_engine.write_online``: :func:`feature_repo.online_rows.online_rows`
        and the online store's ``online_write_batch``), for each combination of
        Feast's write settings, and once more through Feast's own conversion
        (``LocalOutputNode``'s path) with the configured settings; into an empty db,
        in interleaved rounds, so that load on a shared machine hits every variant
        alike. The engine's read is left out: it is the same for all.
        """
        import pyarrow as pa
        from feast.infra.compute_engines.local.nodes import _convert_arrow_to_proto

        from feature_repo.feast_engine import write_online

        def feast_write(online: Any, config: Any, view: Any, table: Any) -> None:
            keys = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
            size = config.materialization_config.online_write_batch_size
            for part in table.to_batches(max_chunksize=size or table.num_rows):
                rows = _convert_arrow_to_proto(part, view, keys)
                online.online_write_batch(config, view, rows, None)

        # The engine handed the write stage slices of one table per view and window:
        # put consecutive slices of a view back together, so every size can re-slice.
        tables: list[tuple[Any, Any]] = []
        for view, batch in batches:
            if tables and tables[-1][0].name == view.name:
                tables[-1][1].append(batch)
            else:
                tables.append((view, [batch]))
        whole = [(view, pa.Table.from_batches(parts)) for view, parts in tables]

        variants: list[tuple[str, Any, Callable[..., None]]] = []
        for skip_dedup in (False, True):
            for batch_size in (10_000, 1_000):
                store = self.store(self.urls[0], batch_size=batch_size, skip_dedup=skip_dedup)
                label = f"engine: online_write_batch_size={batch_size}, skip_dedup={skip_dedup}"
                variants.append((label, store, write_online))
        configured = self.store(self.urls[0])
        settings = (
            f"online_write_batch_size="
            f"{configured.config.materialization_config.online_write_batch_size}, "
            f"skip_dedup={configured.config.online_store.skip_dedup}"
        )
        variants.append((f"Feast's conversion: {settings}", configured, feast_write))
        ttl = configured.config.online_store.key_ttl_seconds
        timings: dict[str, list[float]] = defaultdict(list)
        batch = self.args.ceiling_batch
        ceiling_label = f"ceiling A: HSET+EXPIRE pipelines of {batch}, payloads pre-built"
        built_label = f"ceiling B: building the payloads + HSET+EXPIRE pipelines of {batch}"
        for round_ in range(self.args.write_rounds):
            order = variants[round_ % len(variants) :] + variants[: round_ % len(variants)]
            ceilings = [(ceiling_label, None, None), (built_label, None, None)]
            for label, store, writer in [*order, *ceilings]:
                client = self.feast if store else self.ceiling
                client.flushdb()
                if label == ceiling_label:
                    took = sum(write_raw(client, p.rows, batch, ttl) for p in payloads)
                    timings[label].append(took)
                    continue
                if label == built_label:
                    took = sum(build_and_write_raw(client, p, batch, ttl) for p in payloads)
                    timings[label].append(took)
                    continue
                online, config = store._get_provider().online_store, store.config
                started = time.perf_counter()
                for view, table in whole:
                    writer(online, config, view, table)
                timings[label].append(time.perf_counter() - started)
        # The ceilings last: the table states every variant as a share of them.
        labels = [label for label, _, _ in variants] + [ceiling_label, built_label]
        return [(label, statistics.median(timings[label])) for label in labels]

    # -- throughput --------------------------------------------------------------
    def throughput(
        self, name: str, store: Any, work: Callable[[Materializer], list[RunResult]], repeats: int
    ) -> Throughput:
        """Best of ``repeats`` for ``work`` into an empty db; best of --repeats for the ceiling."""
        views = [v.name for v in store.list_feature_views() if v.online]
        best: tuple[float, list[RunResult], dict[str, dict[str, float]], int, list] | None = None
        for _ in range(repeats):
            self.feast.flushdb()
            before = hset_calls(self.feast)
            self.stages.reset()
            with self.stages.installed(store):
                results = work(Materializer(self.settings, store=store))
            hsets = hset_calls(self.feast) - before
            seconds = sum(r.seconds for r in results)
            if best is None or seconds < best[0]:
                stages = {s: dict(v) for s, v in self.stages.seconds.items()}
                best = (seconds, results, stages, hsets, list(self.stages.batches))
        assert best is not None
        seconds, results, stages, hsets, batches = best

        windows: dict[str, WindowList] = defaultdict(list)
        for result in results:
            for part in result.views:
                if part.rows and part.window_start and part.window_end:
                    windows[part.view].append((part.window_start, part.window_end))
        payloads = ceiling_payloads(self.settings, store, windows)
        ttl = store.config.online_store.key_ttl_seconds
        ceiling: dict[str, float] = {}
        built: dict[str, float] = {}
        hset_only = float("inf")
        batch = self.args.ceiling_batch
        for _ in range(self.args.repeats):
            self.ceiling.flushdb()
            hset_only = min(
                hset_only, sum(write_raw(self.ceiling, p.rows, batch, None) for p in payloads)
            )
            # Each timed ceiling starts empty, like Feast's db.
            self.ceiling.flushdb()
            for payload in payloads:
                took = build_and_write_raw(self.ceiling, payload, batch, ttl)
                built[payload.view] = min(built.get(payload.view, took), took)
            self.ceiling.flushdb()
            for payload in payloads:
                took = write_raw(self.ceiling, payload.rows, batch, ttl)
                ceiling[payload.view] = min(ceiling.get(payload.view, took), took)
        rows = {v: sum(x.rows for r in results for x in r.views if x.view == v) for v in views}
        for payload in payloads:
            if len(payload.rows) != rows[payload.view]:
                console.print(
                    f"[red]{name}: {payload.view}: Feast wrote {rows[payload.view]} rows, "
                    f"the ceiling {len(payload.rows)}[/red]"
                )
        identical, keys = same_content(self.feast, self.ceiling)
        return Throughput(
            name=name,
            repeats=repeats,
            batches=batches,
            payloads=payloads,
            runs=len(results),
            rows=rows,
            run_seconds={
                v: sum(x.seconds for r in results for x in r.views if x.view == v) for v in views
            },
            total_seconds=seconds,
            stages=stages,
            ceiling_seconds=ceiling,
            build_ceiling_seconds=built,
            hset_only_seconds=hset_only,
            serialize_seconds=sum(p.serialize_seconds for p in payloads),
            hsets=hsets,
            identical=identical,
            keys=keys,
        )

    @staticmethod
    def year_backfill(materializer: Materializer) -> list[RunResult]:
        return [materializer.backfill(YEAR_START, YEAR_END)]

    def year_replay(self, materializer: Materializer) -> list[RunResult]:
        # The flushed store lost its marker, so the first run drops the watermarks and
        # starts over, like a new deployment. Starting at the year's first instant makes
        # the ticks cover the year exactly (plane attributes are stamped 2013-01-01 00:00).
        tick = parse_duration(self.args.replay_tick)
        results, now = [], YEAR_START
        while True:
            results.append(materializer.run(now=now, ingest=False))
            if now >= YEAR_END:
                return results
            now = min(now + tick, YEAR_END)

    # -- cost per run vs history -------------------------------------------------
    def history(self, store: Any) -> list[Depth]:
        unpruned_store, pruned_store = self.store(self.urls[2]), self.store(self.urls[3])
        materializer = Materializer(self.settings, store=store)
        depths: list[Depth] = []
        for months in self.args.depths:
            month_end = date(2013, months + 1, 1) - timedelta(days=1)
            started = time.perf_counter()
            ingest(self.settings, month_end)
            if not depths:
                apply(self.settings)
            catch_up = materializer.run(now=_midnight(month_end + timedelta(days=1)))
            self._engine(unpruned_store, catch_up, pruned=False)
            self._engine(pruned_store, catch_up, pruned=True)
            console.log(
                f"history {months} month(s): ingested through {month_end}, caught up "
                f"({catch_up.rows:,} rows) in {time.perf_counter() - started:.0f}s"
            )
            depth = Depth(months, 0, [], set())
            for day in range(1, self.args.days + 1):
                self.stages.reset()
                with self.stages.installed(store), ingest_results() as ingested:
                    result = materializer.run(now=_midnight(month_end + timedelta(days=1 + day)))
                depth.materializer_paths |= self.stages.paths
                sample = {
                    "rows": result.rows,
                    "run": result.seconds,
                    "ingest": sum(r.seconds for r in ingested),
                    "build": sum(r.features.seconds for r in ingested if r.features),
                    "materialize": sum(v.seconds for v in result.views),
                    "materializer_engine": self.stages.total("engine"),
                }
                # Alternate which goes first, so neither always inherits the other's warm cache.
                order = [(False, unpruned_store), (True, pruned_store)]
                for pruned, other in order if day % 2 else order[::-1]:
                    key = "pruned_engine" if pruned else "unpruned_engine"
                    sample[key] = self._engine(other, result, pruned=pruned)
                depth.runs.append(sample)
            depth.days_on_disk = len(
                list((self.settings.features_dir / "route_perf_28d").glob("date=*"))
            )
            depths.append(depth)
        same, keys = same_content(self.feast, self.unpruned, self.pruned)
        console.log(
            f"Materializer, unpruned and pruned online stores identical: {'yes' if same else 'NO'} "
            f"({keys:,} keys)"
        )
        return depths

    def _engine(self, store: Any, result: RunResult, pruned: bool) -> float:
        """Seconds for ``result``'s windows through Feast's engine, pruned or not."""
        from feast import FileSource

        provider = store._get_provider()
        by_name = {v.name: v for v in store.list_feature_views()}
        seconds = 0.0
        for part in result.views:
            if not part.rows or part.window_start is None or part.window_end is None:
                continue
            view = by_name[part.view]
            with tempfile.TemporaryDirectory(dir=self.scratch) as tmp:
                if pruned:
                    files = day_partitions(
                        self.settings.features_dir / view.name, part.window_start, part.window_end
                    )
                    for i, path in enumerate(files):
                        (Path(tmp) / f"{i:05d}.parquet").symlink_to(path)
                    source = FileSource(
                        name=view.batch_source.name,
                        path=f"{tmp}/*.parquet",
                        timestamp_field=view.batch_source.timestamp_field,
                        created_timestamp_column=view.batch_source.created_timestamp_column,
                    )
                    view = copy.copy(view)
                    # Feast's local engine reads ``source`` (and checks ``data_source``), not
                    # ``batch_source``: all three must change for the engine to see the pruning.
                    view.batch_source = view.source = view.data_source = source
                started = time.perf_counter()
                provider.materialize_single_feature_view(
                    config=store.config,
                    feature_view=view,
                    start_date=part.window_start,
                    end_date=part.window_end,
                    registry=store.registry,
                    project=store.project,
                    tqdm_builder=lambda length: _NoProgress(),
                )
                seconds += time.perf_counter() - started
        return seconds


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


@contextmanager
def ingest_results() -> Iterator[list[Any]]:
    """The IngestResults of the ingests a run makes (it imports ``ingest`` when called)."""
    from feature_repo import pipeline

    original, results = pipeline.ingest, []

    def recorded(*args: Any, **kwargs: Any) -> Any:
        results.append(original(*args, **kwargs))
        return results[-1]

    pipeline.ingest = recorded
    try:
        yield results
    finally:
        pipeline.ingest = original


def day_partitions(table_dir: Path, start: datetime, end: datetime) -> list[Path]:
    """The day partitions a window touches (the Materializer selects them the same way)."""
    files, day = [], start.date()
    while day <= end.date():
        if (path := table_dir / f"date={day}" / "part-0.parquet").exists():
            files.append(path)
        day += timedelta(days=1)
    return files


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass
class IntradayDepth:
    months: int
    days_on_disk: int
    runs: list[dict[str, float]]

    def mean(self, key: str) -> float:
        return statistics.fmean(r[key] for r in self.runs)

    def p95(self, key: str) -> float:
        ordered = sorted(r[key] for r in self.runs)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def intraday(args: argparse.Namespace, data_dir: Path, redis_url: str) -> list[IntradayDepth]:
    """The step every ``--intraday-tick`` through one day after each depth of history."""
    settings = Settings(data_dir=data_dir, redis_url=redis_url)
    tick = parse_duration(args.intraday_tick)
    materializer = Materializer(settings)
    depths = []
    for months in args.intraday_depths:
        day = date(2013, months + 1, 1)
        started = time.perf_counter()
        ingest(settings, day - timedelta(days=1))
        if not depths:
            apply(settings)
        materializer.run(now=_midnight(day))
        console.log(
            f"intraday {months} month(s): ingested through {day - timedelta(days=1)}, caught up "
            f"in {time.perf_counter() - started:.0f}s; replaying {day} every {args.intraday_tick}"
        )
        depth = IntradayDepth(months, 0, [])
        now = _midnight(day) + tick
        while now <= _midnight(day + timedelta(days=1)):
            with ingest_results() as ingested:
                result = materializer.run(now=now)
            depth.runs.append(
                {
                    "rows": result.rows,
                    "run": result.seconds,
                    "ingest": sum(r.seconds for r in ingested),
                    "build": sum(r.features.seconds for r in ingested if r.features),
                    "materialize": sum(v.seconds for v in result.views),
                }
            )
            now += tick
        depth.days_on_disk = len(list((settings.features_dir / "route_perf_28d").glob("date=*")))
        depths.append(depth)
    redis.Redis.from_url(redis_url).flushdb()
    return depths


def intraday_table(depths: list[IntradayDepth], tick: str) -> Table:
    table = Table(
        title=f"Intraday: one day replayed every {tick} (Materializer.run: ingest -> build -> "
        "materialize), cost per run as history grows",
        title_justify="left",
        caption="run: one step; ingest: publishing the new events (includes build); build: "
        "extending the feature tables; views: writing the windows through Feast's engine. "
        "Means over the day's runs unless marked; day total: the sum of the day's runs.",
        caption_justify="left",
    )
    for column in (
        "history",
        "days on disk",
        "runs",
        "rows/run",
        "run s (mean)",
        "run s (p95)",
        "run s (max)",
        "ingest s",
        "build s",
        "views s",
        "day total s",
    ):
        table.add_column(column, justify="right")

    def cells(depth: IntradayDepth) -> list[float]:
        return [
            depth.mean("run"),
            depth.p95("run"),
            max(r["run"] for r in depth.runs),
            depth.mean("ingest"),
            depth.mean("build"),
            depth.mean("materialize"),
            sum(r["run"] for r in depth.runs),
        ]

    for depth in depths:
        table.add_row(
            f"{depth.months} mo",
            str(depth.days_on_disk),
            str(len(depth.runs)),
            f"{depth.mean('rows'):,.0f}",
            *(f"{value:.3f}" for value in cells(depth)),
        )
    if len(depths) > 1:
        first, last = depths[0], depths[-1]
        ratios = [f"{b / a:.2f}x" for a, b in zip(cells(first), cells(last), strict=True)]
        add_growth_row(table, first, last, ["", "", *ratios])
    return table


# -- output ------------------------------------------------------------------------
def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}" if seconds > 0 and rows else "-"


def _share(seconds: float, ceiling_seconds: float) -> str:
    """Feast's rows/s as a share of the ceiling's, for the same rows."""
    return f"{ceiling_seconds / seconds:.1%}" if seconds > 0 and ceiling_seconds > 0 else "-"


CEILINGS_CAPTION = (
    "ceiling A (pipeline only): the payloads built beforehand, untimed; HSET+EXPIRE "
    "pipelines. ceiling B (build + pipeline): the same pipelines, timed together with "
    "building the payloads from the same Arrow rows (entity key, Timestamp and ValueProto "
    "serialization), the work any raw redis-py writer of Feast's layout does."
)


def throughput_table(result: Throughput) -> Table:
    table = Table(
        title=f"Throughput into Redis: {result.name} ({result.runs} run(s)"
        f"{f', best of {result.repeats}' if result.repeats > 1 else ''}); "
        "rows Feast wrote per second vs raw pipelined writes of the same rows",
        title_justify="left",
        caption="run: Materializer (window bookkeeping + Feast); engine: Feast's engine "
        "(read, conversion, write); read: the engine's read of the window; write: Feast's "
        "write stage (Arrow-to-proto + "
        f"online_write_batch). {CEILINGS_CAPTION} x/A, x/B = x rows/s as a share of that "
        "ceiling's.",
        caption_justify="left",
    )
    table.add_column("view")
    for column in (
        "rows",
        "run s",
        "engine s",
        "read s",
        "write s",
        "ceil A s",
        "ceil B s",
        "run rows/s",
        "A rows/s",
        "B rows/s",
        "run/A",
        "engine/A",
        "write/A",
        "run/B",
        "engine/B",
        "write/B",
    ):
        table.add_column(column, justify="right")

    def add(
        label: str,
        rows: int,
        run: float,
        engine: float,
        read: float,
        write: float,
        ceil: float,
        built: float,
    ) -> None:
        table.add_row(
            label,
            f"{rows:,}",
            f"{run:.2f}",
            f"{engine:.2f}",
            f"{read:.3f}",
            f"{write:.3f}",
            f"{ceil:.3f}",
            f"{built:.3f}",
            _rate(rows, run),
            _rate(rows, ceil),
            _rate(rows, built),
            _share(run, ceil),
            _share(engine, ceil),
            _share(write, ceil),
            _share(run, built),
            _share(engine, built),
            _share(write, built),
        )

    stages = result.stages
    for view, rows in result.rows.items():
        write = stages.get("convert", {}).get(view, 0.0) + stages.get("write", {}).get(view, 0.0)
        add(
            view,
            rows,
            result.run_seconds[view],
            stages.get("engine", {}).get(view, 0.0),
            stages.get("read", {}).get(view, 0.0),
            write,
            result.ceiling_seconds.get(view, 0.0),
            result.build_ceiling_seconds.get(view, 0.0),
        )
    table.add_section()
    add(
        "all views (whole runs)",
        sum(result.rows.values()),
        result.total_seconds,
        sum(stages.get("engine", {}).values()),
        sum(stages.get("read", {}).values()),
        write_stage_seconds(result),
        sum(result.ceiling_seconds.values()),
        sum(result.build_ceiling_seconds.values()),
    )
    return table


def write_stage_seconds(result: Throughput) -> float:
    return sum(sum(result.stages.get(s, {}).values()) for s in ("convert", "write"))


def write_settings_table(timings: list[tuple[str, float]], rows: int, rounds: int) -> Table:
    table = Table(
        title=f"Feast's write settings: the write stage alone on the year-one-window rows "
        f"({rows:,}), median of {rounds} interleaved rounds",
        title_justify="left",
        caption=CEILINGS_CAPTION,
        caption_justify="left",
    )
    for column in ("variant", "seconds", "rows/s", "share of ceiling A", "share of ceiling B"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    built, ceiling = timings[-1][1], timings[-2][1]
    for label, seconds in timings:
        table.add_row(
            label,
            f"{seconds:.3f}",
            _rate(rows, seconds),
            _share(seconds, ceiling),
            _share(seconds, built),
        )
    return table


def add_growth_row(table: Table, first: Any, last: Any, cells: list[str]) -> None:
    """The last depth over the first: history (days on disk), then ``cells``."""
    table.add_section()
    table.add_row(
        f"{last.months} mo / {first.months} mo",
        f"{last.days_on_disk / first.days_on_disk:.1f}x",
        *cells,
    )


def history_table(depths: list[Depth]) -> Table:
    table = Table(
        title="Cost per daily run as history grows (fastest of the timed runs at each depth)",
        title_justify="left",
        caption="run: one Materializer.run; ingest: its ingest of the new day, of which build: "
        "extending the feature tables; views: its per-view part; engine: Feast's "
        "engine (materialize, one view and window per call) summed over the views, for the same "
        "windows, with the "
        "Materializer's source, the registered date=* one (unpruned) or the window's days "
        "(pruned). x/pruned: median of per-run ratios to the pruned engine timed next to it, "
        "so load on the machine mostly cancels out.",
        caption_justify="left",
    )
    columns = {
        "history": "",
        "days on disk": "",
        "rows/run": "rows",
        "run s": "run",
        "ingest s": "ingest",
        "build s": "build",
        "views s": "materialize",
        "Materializer engine s": "materializer_engine",
        "unpruned engine s": "unpruned_engine",
        "pruned engine s": "pruned_engine",
        "Materializer/pruned": "",
        "unpruned/pruned": "",
    }
    for column in columns:
        table.add_column(column, justify="right")
    for depth in depths:
        table.add_row(
            f"{depth.months} mo",
            str(depth.days_on_disk),
            f"{statistics.mean(r['rows'] for r in depth.runs):,.0f}",
            *(f"{depth.best(key):.2f}" for key in list(columns.values())[3:-2]),
            f"{depth.ratio('materializer_engine'):.1f}x",
            f"{depth.ratio('unpruned_engine'):.1f}x",
        )
    if len(depths) > 1:
        first, last = depths[0], depths[-1]
        keys = list(columns.values())[3:-2]
        ratios = [f"{last.best(key) / first.best(key):.2f}x" for key in keys]
        add_growth_row(table, first, last, ["", *ratios, "", ""])
    return table


# -- main --------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--redis-url", help="use this server: its db N for Feast, N+1..N+3")
    parser.add_argument("--depths", default="1,3,6,11", help="months of history to time runs at")
    parser.add_argument("--days", type=int, default=3, help="daily runs timed per depth")
    parser.add_argument("--repeats", type=int, default=3, help="best of N: backfill, ceiling")
    parser.add_argument("--replay-tick", default="14d", help="year replay tick; 0 skips it")
    parser.add_argument("--ceiling-batch", type=int, default=1_000, help="rows per pipeline")
    parser.add_argument(
        "--write-rounds", type=int, default=5, help="rounds of the write-settings A/B; 0 skips it"
    )
    parser.add_argument("--online-write-batch-size", type=int, help="override the config's")
    parser.add_argument(
        "--skip-dedup",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override the Redis store's skip_dedup (default: as configured)",
    )
    parser.add_argument(
        "--window-read",
        choices=["feast", "duckdb"],
        help="override the engine's window_read (default: as configured)",
    )
    parser.add_argument("--skip-history", action="store_true", help="throughput only")
    parser.add_argument(
        "--intraday-depths",
        default="1,3,6,11",
        help="months of history before the day replayed intraday; 0 skips it",
    )
    parser.add_argument("--intraday-tick", default="15m", help="the intraday replay's tick")
    parser.add_argument("--intraday-only", action="store_true", help="only the intraday workload")
    parser.add_argument(
        "--quick", action="store_true", help="depths 1,6; 2 days; 1 repeat; 30d tick; 2 rounds"
    )
    args = parser.parse_args(argv)
    if args.quick:
        quick = {"depths": "1,6", "days": 2, "repeats": 1, "replay_tick": "30d", "write_rounds": 2}
        for name, value in quick.items():
            if getattr(args, name) == parser.get_default(name):  # explicit flags still win
                setattr(args, name, value)
    args.depths = sorted({int(m) for m in args.depths.split(",")})
    if not all(1 <= m <= 11 for m in args.depths):
        parser.error("--depths are months 1..11 (the throughput part needs the whole year)")
    args.intraday_depths = sorted({int(m) for m in args.intraday_depths.split(",")} - {0})
    if not all(1 <= m <= 11 for m in args.intraday_depths):
        parser.error("--intraday-depths are months 1..11")
    parse_duration(args.intraday_tick)
    if args.replay_tick not in ("0", "none"):
        parse_duration(args.replay_tick)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.getLogger("feature_repo").setLevel(logging.ERROR)
    os.environ.setdefault("FEAST_USAGE", "False")
    with tempfile.TemporaryDirectory(prefix="bench-materialize.") as tmp:
        data_dir = Path(tmp) / "data"
        # The definitions resolve their source paths from this variable when imported.
        os.environ["FEASTLINE_DATA_DIR"] = str(data_dir)
        # A backfill reads "now" from the clock: pin it to the end of the data.
        os.environ[NOW_ENV] = YEAR_END.isoformat()
        if args.redis_url:
            db = int((urlparse(args.redis_url).path or "/0").lstrip("/") or 0)
            urls = [url_with_db(args.redis_url, db + i) for i in range(4)]
            try:
                run(args, data_dir, urls, False)
            finally:
                for url in urls:  # someone else's server: leave the dbs as empty as we found them
                    redis.Redis.from_url(url).flushdb()
        else:
            with OwnRedis(Path(tmp)) as server:
                run(args, data_dir, [server.url(i) for i in range(4)], True)


def run(args: argparse.Namespace, data_dir: Path, urls: list[str], own_server: bool) -> None:
    started = time.perf_counter()
    bench = Bench(args, data_dir, urls)
    for client in bench.clients:
        client.flushdb()
    console.log(f"data in {data_dir}; Redis dbs: Feast, ceiling, unpruned, pruned = {urls}")
    store = bench.store(urls[0])
    config = store.config
    console.log(
        "Feast settings: online_write_batch_size="
        f"{config.materialization_config.online_write_batch_size}, "
        f"skip_dedup={config.online_store.skip_dedup}, "
        f"pull_latest_features={config.materialization_config.pull_latest_features}, "
        f"key_ttl_seconds={config.online_store.key_ttl_seconds}, "
        f"batch_engine={config.batch_engine_config}; "
        f"ceilings: pipelines of {args.ceiling_batch} rows"
    )

    intraday_depths = (
        intraday(args, data_dir.parent / "intraday", urls[1]) if args.intraday_depths else []
    )
    if intraday_depths:
        console.print(intraday_table(intraday_depths, args.intraday_tick))
        intraday_verdict(intraday_depths)
    if args.intraday_only:
        return
    depths = [] if args.skip_history else bench.history(store)

    ingest(bench.settings, date(2013, 12, 31))
    if args.skip_history:
        apply(bench.settings)
    first = Materializer(bench.settings, store=store).run(now=YEAR_END, ingest=False)
    console.log(f"ingested 2013; first materialization through it wrote {first.rows:,} rows")
    results = [bench.throughput("year, one window", store, bench.year_backfill, args.repeats)]
    if args.replay_tick not in ("0", "none"):
        # One pass: it takes minutes, and its many runs already average the noise out.
        name = f"year, replayed every {args.replay_tick}"
        results.append(bench.throughput(name, store, bench.year_replay, repeats=1))

    for result in results:
        console.print(throughput_table(result))
        rows = sum(result.rows.values())
        ceiling = sum(result.ceiling_seconds.values())
        console.print(
            f"  rows Feast wrote {rows:,}; Redis HSET calls {result.hsets:,}"
            f"{'' if own_server else ' (shared server: other clients count too)'}; "
            f"Feast and ceiling dbs byte-identical: {'yes' if result.identical else 'NO'} "
            f"({result.keys:,} keys)\n"
            f"  ceiling A without EXPIRE {rows / result.hset_only_seconds:,.0f} rows/s "
            f"(run/that {_share(result.total_seconds, result.hset_only_seconds)}); "
            f"ceiling A's payloads took {result.serialize_seconds:.2f}s to build, untimed "
            f"(A + that: {rows / (ceiling + result.serialize_seconds):,.0f} rows/s; "
            f"ceiling B, timed in one go: "
            f"{rows / sum(result.build_ceiling_seconds.values()):,.0f} rows/s)"
        )
    if args.write_rounds:
        console.print(
            write_settings_table(
                bench.write_settings(results[0].batches, results[0].payloads),
                sum(results[0].rows.values()),
                args.write_rounds,
            )
        )
    if depths:
        console.print(history_table(depths))
        kinds = sorted(
            {
                "date=* glob" if "date=*" in p else "pruned"
                for d in depths
                for p in d.materializer_paths
            }
        )
        console.print(f"  the Materializer's runs made Feast's engine read: {', '.join(kinds)}")
    verdict(results, depths)
    if intraday_depths:
        console.print(intraday_table(intraday_depths, args.intraday_tick))
        intraday_verdict(intraday_depths)
    console.log(f"total {time.perf_counter() - started:.0f}s")


# Growth over the measured history that still counts as flat: the runs are ~1 s and
# the machine is noisy, while unpruned reads grow with the number of partitions.
FLAT = 1.5


def intraday_verdict(depths: list[IntradayDepth]) -> None:
    if len(depths) < 2:
        return
    first, last = depths[0], depths[-1]
    growth = last.mean("run") / first.mean("run")
    console.print(
        f"intraday cost per run: {growth:.2f}x from {first.months} to {last.months} months of "
        f"history ({'flat' if growth <= FLAT else 'NOT flat'}; flat means <= {FLAT}x)"
    )


def verdict(results: list[Throughput], depths: list[Depth]) -> None:
    for result in results:
        rows = sum(result.rows.values())
        write = write_stage_seconds(result)
        parts = []
        for label, ceiling in (
            ("ceiling A (pipeline only)", sum(result.ceiling_seconds.values())),
            ("ceiling B (build + pipeline)", sum(result.build_ceiling_seconds.values())),
        ):
            share = ceiling / result.total_seconds
            parts.append(
                f"{share:.1%} of {label} (target >= 30%: {'met' if share >= 0.3 else 'NOT met'}; "
                f"write stage alone {ceiling / write:.1%})"
            )
        console.print(
            f"[bold]{result.name}[/bold]: Feast {rows / result.total_seconds:,.0f} rows/s = "
            + "; ".join(parts)
        )
        # Rows handed over ready-made, Feast's online_write_batch alone: no run through
        # Feast in one process can beat this share, whatever it does before the call.
        store_write = sum(result.stages.get("write", {}).values())
        ceiling_a = sum(result.ceiling_seconds.values())
        console.print(
            f"  bound: RedisOnlineStore.online_write_batch alone took {store_write:.3f}s = "
            f"{ceiling_a / store_write:.1%} of ceiling A; "
            f"{sum(result.build_ceiling_seconds.values()) / store_write:.1%} of ceiling B"
        )
    if len(depths) > 1:
        first, last = depths[0], depths[-1]
        history = last.days_on_disk / first.days_on_disk
        for label, key in (
            ("whole run", "run"),
            ("its ingest", "ingest"),
            ("its feature build", "build"),
            ("Materializer's engine", "materializer_engine"),
            ("engine, pruned", "pruned_engine"),
            ("engine, unpruned", "unpruned_engine"),
        ):
            growth = last.best(key) / first.best(key)
            console.print(
                f"cost per run, {label}: {growth:.2f}x with {history:.1f}x the history "
                f"({'flat' if growth <= FLAT else 'NOT flat'}; flat means <= {FLAT}x)"
            )
        for label, key in (
            ("Materializer's", "materializer_engine"),
            ("unpruned", "unpruned_engine"),
        ):
            before, after = (d.ratio(key) for d in (first, last))
            console.print(
                f"{label} engine time / pruned engine time, measured alongside: "
                f"{before:.1f}x at {first.months} mo -> {after:.1f}x at {last.months} mo"
            )


if __name__ == "__main__":
    main()
