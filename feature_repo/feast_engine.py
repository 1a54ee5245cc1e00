"""Feast's local materialization engine, fitted to windowed runs over day partitions.

Selected in ``feature_store.yaml`` (``batch_engine``). It is Feast's
``LocalComputeEngine`` running Feast's DAG; features land in the online store
only through the store's own ``online_write_batch``, in batches of
``online_write_batch_size``, so the key layout and every read stay Feast's.
What differs:

- a :class:`WindowTask` may name the window's day-partition files; the read
  then covers those files only (no ``date=*`` glob over all history, and no
  folder of links to build and delete);
- ``window_read`` says how those files are read: ``feast`` runs the offline
  store's own ``pull_latest_from_table_or_query`` (ibis over DuckDB) on them;
  ``duckdb`` runs the same selection as one DuckDB statement (rows with
  ``start <= event_timestamp <= end``, the newest per entity by event then
  created timestamp), without ibis's per-call expression building and
  compilation (about 20 ms a window, more than the read itself for a day);
- given several tasks (the Materializer passes one per view), the windows are
  read ahead on two threads while the main thread writes;
- the two steps that are identities in a materialization are left out: the
  filter node (it filters only against an entity DataFrame, which a
  materialization has none of, or by a view ``filter``) and, with
  ``pull_latest_features``, the pandas dedup node (the read already returned
  one row per entity, chosen with the same ordering). Each was a round trip
  through pandas;
- the output node builds the rows with :func:`feature_repo.online_rows.online_rows`
  (the same rows as Feast's pandas-based conversion) and pauses the garbage
  collector for the write; together they halve the write stage's time;
- the job reports what it wrote: rows, the newest event timestamp and seconds,
  so the caller needs no second scan of the window to count them;
- a task with ``newest_wins`` keeps the Redis store's timestamp check even when
  ``skip_dedup`` is configured (a backfill below the watermark).

A plain ``MaterializationTask`` (``feast materialize``, the Feast CLI) reads the
source as registered, through Feast's offline store.

The engine and its DAG builder mix in :class:`feature_repo.feast_compat.LocalEngineHooks`
and :class:`~feature_repo.feast_compat.LocalBuilderHooks`, which give Feast's private
hooks public names: every use of Feast's private API stays in that adapter."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from feast.infra.common.materialization_job import (
    MaterializationJobStatus,
    MaterializationTask,
)
from feast.infra.compute_engines.local import nodes
from feast.infra.compute_engines.local.arrow_table_value import ArrowTableValue
from feast.infra.compute_engines.local.compute import (
    LocalComputeEngine,
    LocalComputeEngineConfig,
)
from feast.infra.compute_engines.local.feature_builder import LocalFeatureBuilder
from feast.infra.compute_engines.local.job import LocalMaterializationJob

from feature_repo.feast_compat import (
    LocalBuilderHooks,
    LocalEngineHooks,
    with_online_store,
    write_duckdb_data_source,
)
from feature_repo.online_rows import online_rows

ENGINE_TYPE = "feature_repo.feast_engine.WindowEngine"
WindowRead = Literal["feast", "duckdb"]


@dataclass
class WindowTask(MaterializationTask):
    """A materialization task that may name the files holding its window."""

    source_files: list[str] | None = None
    # Keep the online store's newest-wins check even if skip_dedup is configured.
    newest_wins: bool = False


class WindowJob(LocalMaterializationJob):
    """Feast's local job, plus what it wrote (rows, the newest event timestamp) and
    how long its read wait, conversion and write took."""

    def __init__(
        self,
        job_id: str,
        status: MaterializationJobStatus,
        error: BaseException | None = None,
        rows: int = 0,
        newest_event: datetime | None = None,
        seconds: float = 0.0,
    ) -> None:
        super().__init__(job_id=job_id, status=status, error=error)
        self.rows = rows
        self.newest_event = newest_event
        self.seconds = seconds


@dataclass
class _Plan:
    """One task's DAG, built; or why it could not be."""

    job_id: str
    task: MaterializationTask
    context: Any = None
    builder: _WindowFeatureBuilder | None = None
    dag: Any = None
    error: BaseException | None = None

    def read_ahead(self, reader: ThreadPoolExecutor) -> None:
        if self.builder is not None:
            for node in self.builder.nodes:
                if isinstance(node, _WindowReadNode):
                    node.read_ahead(reader, self.context)

    def run(self) -> WindowJob:
        if self.error is not None or self.builder is None:
            return WindowJob(self.job_id, MaterializationJobStatus.ERROR, error=self.error)
        started = time.perf_counter()
        try:
            written = self.dag.execute(self.context).data  # the output node's input
            view = self.task.feature_view
            rows, newest = _written(written, self.builder.get_column_info(view))
        except Exception as err:
            return WindowJob(self.job_id, MaterializationJobStatus.ERROR, error=err)
        return WindowJob(
            self.job_id,
            MaterializationJobStatus.SUCCEEDED,
            rows=rows,
            newest_event=newest,
            seconds=time.perf_counter() - started,
        )


class WindowEngineConfig(LocalComputeEngineConfig):
    type: Literal["feature_repo.feast_engine.WindowEngine"] = ENGINE_TYPE  # type: ignore[assignment]
    window_read: WindowRead = "feast"


class WindowEngine(LocalEngineHooks, LocalComputeEngine):
    def __init__(self, window_read: WindowRead = "feast", **kwargs: Any) -> None:
        kwargs.pop("type", None)
        super().__init__(**kwargs)
        if window_read not in ("feast", "duckdb"):
            raise ValueError(f"window_read must be 'feast' or 'duckdb', got {window_read!r}")
        self.window_read = window_read
        self._duckdb: Any = None
        self._duckdb_lock = threading.Lock()

    def materialize(
        self,
        registry: Any,
        tasks: MaterializationTask | list[MaterializationTask],
        **kwargs: Any,
    ) -> list[Any]:
        """One job per task, in order, with the windows read ahead on two threads.

        The reads (DuckDB, which runs outside the GIL) go ahead while the main
        thread converts and writes, so a run over several views mostly waits for
        the first read only. With ``pull_latest_features`` a read returns at most
        one row per entity (the newest in its window), so every window is read
        ahead at once; otherwise a read returns all the window's rows, and only
        the next window is read ahead.
        """
        tasks = [tasks] if isinstance(tasks, MaterializationTask) else list(tasks)
        plans = [self._plan(registry, task) for task in tasks]
        latest = self.repo_config.materialization_config.pull_latest_features
        ahead = len(plans) if latest else 1
        jobs = []
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="window-read") as reader:
            for plan in plans[:ahead]:
                plan.read_ahead(reader)
            for index, plan in enumerate(plans):
                if index + ahead < len(plans):
                    plans[index + ahead].read_ahead(reader)
                jobs.append(plan.run())
        return jobs

    def materialize_one(self, registry: Any, task: MaterializationTask, **kwargs: Any) -> Any:
        return self._plan(registry, task).run()

    def _plan(self, registry: Any, task: MaterializationTask) -> _Plan:
        job_id = f"{task.feature_view.name}-{task.start_time}-{task.end_time}"
        try:
            context = self.get_execution_context(registry, task)
            if getattr(task, "newest_wins", False):
                context.repo_config = _with_newest_wins(context.repo_config)
            builder = _WindowFeatureBuilder(
                registry,
                task,
                backend=self.backend(context),
                pull_latest=bool(context.repo_config.materialization_config.pull_latest_features),
                engine=self,
            )
            return _Plan(job_id, task, context, builder, builder.build())
        except Exception as err:
            return _Plan(job_id, task, error=err)

    def read_window(
        self,
        source: Any,
        column_info: Any,
        context: Any,
        start: datetime,
        end: datetime,
        files: list[str] | None,
    ) -> pa.Table:
        """The window's rows as the offline store's materialization query selects them."""
        from feast import FileSource
        from feast.infra.offline_stores.duckdb import DuckDBOfflineStore

        pull_latest = context.repo_config.materialization_config.pull_latest_features
        if (
            files is None
            or not isinstance(context.offline_store, DuckDBOfflineStore)
            or not isinstance(source, FileSource)
        ):
            return nodes.create_offline_store_retrieval_job(
                data_source=source,
                context=context,
                start_time=start,
                end_time=end,
                column_info=column_info,
            ).to_arrow()
        if self.window_read == "duckdb" and not column_info.field_mapping:
            return self._duckdb_window(column_info, start, end, files, pull_latest)
        return _feast_window(source, column_info, context, start, end, files, pull_latest)

    def _duckdb_window(
        self, column_info: Any, start: datetime, end: datetime, files: list[str], latest: bool
    ) -> pa.Table:
        import duckdb

        ts, created, keys = column_info.ts_col, column_info.created_ts_col, column_info.join_keys
        columns = [*keys, *column_info.feature_cols, ts] + ([created] if created else [])
        order = [f"{_q(ts)} DESC"] + ([f"{_q(created)} DESC"] if created else [])
        sql = (
            f"SELECT {', '.join(map(_q, columns))} "
            "FROM read_parquet($files, hive_partitioning = false) "
            f"WHERE {_q(ts)} >= $start AND {_q(ts)} <= $end"
        )
        if latest:
            sql += (
                f" QUALIFY row_number() OVER (PARTITION BY {', '.join(map(_q, keys))} "
                f"ORDER BY {', '.join(order)}) = 1"
            )
        params = {"files": files, "start": _utc(start), "end": _utc(end)}
        with self._duckdb_lock:  # one database; a cursor per read, as reads run in parallel
            if self._duckdb is None:
                self._duckdb = duckdb.connect()
                self._duckdb.execute("SET TimeZone = 'UTC'")
            cursor = self._duckdb.cursor()
        try:
            return cursor.sql(sql, params=params).to_arrow_table()
        finally:
            cursor.close()


def _feast_window(
    source: Any,
    column_info: Any,
    context: Any,
    start: datetime,
    end: datetime,
    files: list[str],
    latest: bool,
) -> pa.Table:
    """Feast's DuckDB materialization query, with a reader that opens ``files``."""
    import ibis
    from feast.infra.offline_stores.ibis import (
        pull_all_from_table_or_query_ibis,
        pull_latest_from_table_or_query_ibis,
    )

    config = context.repo_config
    pull = pull_latest_from_table_or_query_ibis if latest else pull_all_from_table_or_query_ibis
    return pull(
        config=config,
        data_source=source,
        join_key_columns=column_info.join_keys,
        feature_name_columns=column_info.feature_cols,
        timestamp_field=column_info.ts_col,
        created_timestamp_column=column_info.created_ts_col,
        start_date=start,
        end_date=end,
        data_source_reader=lambda _source, _repo_path: ibis.read_parquet(list(files)),
        data_source_writer=write_duckdb_data_source,
        staging_location=config.offline_store.staging_location,
        staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override,
    ).to_arrow()


class _WindowReadNode(nodes.LocalSourceReadNode):
    def __init__(self, *args: Any, engine: WindowEngine, files: list[str] | None, **kw: Any):
        super().__init__(*args, **kw)
        self.engine = engine
        self.files = files
        self._ahead: Future[pa.Table] | None = None

    def read_ahead(self, reader: ThreadPoolExecutor, context: Any) -> None:
        """Start the read on ``reader``; :meth:`execute` then waits for it."""
        if self._ahead is None:
            self._ahead = reader.submit(self._read, context)

    def _read(self, context: Any) -> pa.Table:
        assert self.start_time is not None and self.end_time is not None
        return self.engine.read_window(
            self.source, self.column_info, context, self.start_time, self.end_time, self.files
        )

    def execute(self, context: Any) -> ArrowTableValue:
        table = self._ahead.result() if self._ahead is not None else self._read(context)
        self._ahead = None
        if self.column_info.field_mapping:
            table = table.rename_columns(
                [self.column_info.field_mapping.get(c, c) for c in table.column_names]
            )
        return ArrowTableValue(data=table)


class _WindowFeatureBuilder(LocalBuilderHooks, LocalFeatureBuilder):
    def __init__(self, *args: Any, pull_latest: bool, engine: WindowEngine, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pull_latest = pull_latest
        self.engine = engine

    def build_source_node(self, view: Any) -> Any:
        if not isinstance(self.task, MaterializationTask):
            return super().build_source_node(view)
        node = _WindowReadNode(
            "source",
            view.source,
            self.get_column_info(view),
            self.task.start_time,
            self.task.end_time,
            engine=self.engine,
            files=getattr(self.task, "source_files", None),
        )
        self.nodes.append(node)
        return node

    def build_filter_node(self, view: Any, input_node: Any) -> Any:
        # Feast's filter node filters only against an entity DataFrame's timestamps
        # (a materialization has none) and by the view's filter expression.
        if isinstance(self.task, MaterializationTask) and not getattr(view, "filter", None):
            return input_node
        return super().build_filter_node(view, input_node)

    def build_output_nodes(self, view: Any, input_node: Any) -> Any:
        # Feast annotates batch and stream views only; a plain FeatureView materializes too.
        node = _WindowOutputNode("output", self.dag_root.view, inputs=[input_node])  # type: ignore[arg-type]
        self.nodes.append(node)
        return node

    def should_dedupe(self, view: Any) -> bool:
        if (
            isinstance(self.task, MaterializationTask)
            and self.pull_latest
            and view.data_source
            and not getattr(view, "feature_transformation", None)
        ):
            return False  # the read returned the newest row per entity already
        return super().should_dedupe(view)


class _WindowOutputNode(nodes.LocalOutputNode):
    """Feast's output node, converting rows with :func:`online_rows` instead of
    Feast's pandas round trip; the rows still go to the online store's own
    ``online_write_batch``, in batches of ``online_write_batch_size``."""

    def execute(self, context: Any) -> ArrowTableValue:
        table = self.get_single_table(context).data
        output = ArrowTableValue(data=table)
        context.node_outputs[self.name] = output
        if table.num_rows == 0:
            return output
        view = self.feature_view
        if view.online:
            write_online(context.online_store, context.repo_config, view, table)
        if view.offline:
            context.offline_store.offline_write_batch(
                config=context.repo_config,
                feature_view=view,
                table=table,
                progress=lambda _: None,
            )
        return output


def write_online(online_store: Any, config: Any, view: Any, table: pa.Table) -> None:
    """``table``'s rows into the online store through its ``online_write_batch``, in
    batches of ``online_write_batch_size`` (one batch when unset, as in Feast, whose
    unset case writes only the table's first chunk; here every row is written)."""
    join_keys = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
    size = config.materialization_config.online_write_batch_size
    with _collector_paused():
        for batch in table.combine_chunks().to_batches(max_chunksize=size or table.num_rows):
            online_store.online_write_batch(
                config=config,
                table=view,
                data=online_rows(batch, view, join_keys),
                progress=lambda _: None,
            )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the duration.

    A write allocates several objects per value (protos, dicts, tuples), none of
    them in reference cycles; each 700 allocations trigger a collection, and the
    older generations' passes walk the whole long-lived heap of a process that
    has imported Feast. Pausing it cut the write stage's time by a quarter.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _written(table: pa.Table, column_info: Any) -> tuple[int, datetime | None]:
    if table.num_rows == 0:
        return 0, None
    newest = pc.max(table.column(column_info.timestamp_column)).as_py()
    if newest is None:
        return table.num_rows, None
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)  # naive timestamps are UTC in Feast
    return table.num_rows, newest.astimezone(UTC)


def _with_newest_wins(config: Any) -> Any:
    online = config.online_store
    if not getattr(online, "skip_dedup", False):
        return config
    return with_online_store(config, online.model_copy(update={"skip_dedup": False}))


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _utc(instant: datetime) -> datetime:
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)
