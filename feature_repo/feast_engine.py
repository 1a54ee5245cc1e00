"""Feast's local materialization engine, fitted to windowed runs over day partitions.

Selected in ``feature_store.yaml`` (``batch_engine``). It is Feast's
``LocalComputeEngine`` running Feast's DAG, ending in Feast's
``LocalOutputNode``: Feast's Arrow-to-proto conversion, then the online store's
``online_write_batch`` in batches of ``online_write_batch_size``. Features land
in the online store only through Feast. What differs:

- a :class:`WindowTask` may name the window's day-partition files; the read
  then covers those files only (no ``date=*`` glob over all history, and no
  folder of links to build and delete);
- ``window_read`` says how those files are read: ``feast`` runs the offline
  store's own ``pull_latest_from_table_or_query`` (ibis over DuckDB) on them;
  ``duckdb`` runs the same selection as one DuckDB statement (rows with
  ``start <= event_timestamp <= end``, the newest per entity by event then
  created timestamp), without ibis's per-call expression building and
  compilation (about 20 ms a window, more than the read itself for a day);
- the two steps that are identities in a materialization are left out: the
  filter node (it filters only against an entity DataFrame, which a
  materialization has none of, or by a view ``filter``) and, with
  ``pull_latest_features``, the pandas dedup node (the read already returned
  one row per entity, chosen with the same ordering). Each was a round trip
  through pandas;
- the job reports what it wrote: rows, and the newest event timestamp, so the
  caller needs no second scan of the window to count them;
- a task with ``newest_wins`` keeps the Redis store's timestamp check even when
  ``skip_dedup`` is configured (a backfill below the watermark).

A plain ``MaterializationTask`` (``feast materialize``, the Feast CLI) reads the
source as registered, through Feast's offline store.
"""

from __future__ import annotations

import copy
import threading
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

ENGINE_TYPE = "feature_repo.feast_engine.WindowEngine"
WindowRead = Literal["feast", "duckdb"]


@dataclass
class WindowTask(MaterializationTask):
    """A materialization task that may name the files holding its window."""

    source_files: list[str] | None = None
    # Keep the online store's newest-wins check even if skip_dedup is configured.
    newest_wins: bool = False


class WindowJob(LocalMaterializationJob):
    """Feast's local job, plus what it wrote: rows, and the newest event timestamp."""

    def __init__(
        self,
        job_id: str,
        status: MaterializationJobStatus,
        error: BaseException | None = None,
        rows: int = 0,
        newest_event: datetime | None = None,
    ) -> None:
        super().__init__(job_id=job_id, status=status, error=error)
        self.rows = rows
        self.newest_event = newest_event


class WindowEngineConfig(LocalComputeEngineConfig):
    type: Literal["feature_repo.feast_engine.WindowEngine"] = ENGINE_TYPE  # type: ignore[assignment]
    window_read: WindowRead = "feast"


class WindowEngine(LocalComputeEngine):
    def __init__(self, window_read: WindowRead = "feast", **kwargs: Any) -> None:
        kwargs.pop("type", None)
        super().__init__(**kwargs)
        if window_read not in ("feast", "duckdb"):
            raise ValueError(f"window_read must be 'feast' or 'duckdb', got {window_read!r}")
        self.window_read = window_read
        self._duckdb: Any = None
        self._duckdb_lock = threading.Lock()

    def _materialize_one(self, registry: Any, task: MaterializationTask, **kwargs: Any) -> Any:
        job_id = f"{task.feature_view.name}-{task.start_time}-{task.end_time}"
        try:
            context = self.get_execution_context(registry, task)
            if getattr(task, "newest_wins", False):
                context.repo_config = _with_newest_wins(context.repo_config)
            builder = _WindowFeatureBuilder(
                registry,
                task,
                backend=self._get_backend(context),
                pull_latest=bool(context.repo_config.materialization_config.pull_latest_features),
                engine=self,
            )
            written = builder.build().execute(context).data  # the output node's input
            rows, newest = _written(written, builder.get_column_info(task.feature_view))
            return WindowJob(
                job_id, MaterializationJobStatus.SUCCEEDED, rows=rows, newest_event=newest
            )
        except Exception as err:
            return WindowJob(job_id, MaterializationJobStatus.ERROR, error=err)

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
            f"SELECT {', '.join(map(_q, columns))} FROM read_parquet($files) "
            f"WHERE {_q(ts)} >= $start AND {_q(ts)} <= $end"
        )
        if latest:
            sql += (
                f" QUALIFY row_number() OVER (PARTITION BY {', '.join(map(_q, keys))} "
                f"ORDER BY {', '.join(order)}) = 1"
            )
        params = {"files": files, "start": _utc(start), "end": _utc(end)}
        with self._duckdb_lock:  # one connection; the Materializer runs one task at a time
            if self._duckdb is None:
                self._duckdb = duckdb.connect()
                self._duckdb.execute("SET TimeZone = 'UTC'")
            return self._duckdb.sql(sql, params=params).to_arrow_table()


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
    from feast.infra.offline_stores import duckdb as feast_duckdb
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
        data_source_writer=feast_duckdb._write_data_source,
        staging_location=config.offline_store.staging_location,
        staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override,
    ).to_arrow()


class _WindowReadNode(nodes.LocalSourceReadNode):
    def __init__(self, *args: Any, engine: WindowEngine, files: list[str] | None, **kw: Any):
        super().__init__(*args, **kw)
        self.engine = engine
        self.files = files

    def execute(self, context: Any) -> ArrowTableValue:
        assert self.start_time is not None and self.end_time is not None
        table = self.engine.read_window(
            self.source, self.column_info, context, self.start_time, self.end_time, self.files
        )
        if self.column_info.field_mapping:
            table = table.rename_columns(
                [self.column_info.field_mapping.get(c, c) for c in table.column_names]
            )
        return ArrowTableValue(data=table)


class _WindowFeatureBuilder(LocalFeatureBuilder):
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

    def _should_dedupe(self, view: Any) -> bool:
        if (
            isinstance(self.task, MaterializationTask)
            and self.pull_latest
            and view.data_source
            and not getattr(view, "feature_transformation", None)
        ):
            return False  # the read returned the newest row per entity already
        return super()._should_dedupe(view)


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
    patched = copy.copy(config)
    patched._online_store = online.model_copy(update={"skip_dedup": False})
    return patched


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _utc(instant: datetime) -> datetime:
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)
