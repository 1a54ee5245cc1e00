"""Point-in-time correct training sets from Feast.

The entity rows are the labelled flights of a window, each at its prediction
time (scheduled departure minus the prediction lead). Features come from
Feast's ``get_historical_features`` for the feature service's views, with
strict as-of semantics (``filter_by_created_timestamp=True``). A leakage guard
then checks each feature view's audit column ``source_ts`` (the newest raw
input behind a value) against the prediction time, and refuses to write a set
that saw the future.

The result is what one ``FeatureStore.get_historical_features(...).to_df()``
call over the whole window returns, sorted, but that call does not scale
(``bench/offline.py`` measures it): for the 2013 year replicated 10x it passed
12 GB within four minutes and was stopped; this builder takes 85 s and 0.7 GB.
Three things in it grow with the window, not the work:

- Feast's DuckDB store joins every entity row with *all* of a view's history
  for its key before applying the TTL, and DuckDB can only prune that history
  from above, so a view refreshed hourly per airport costs rows x hours of
  history. Entity rows therefore go in time-ordered chunks (``CHUNK_ROWS``), and
  for each chunk every view's source is a folder of links to only the day
  partitions that can hold an as-of match: from the chunk's first prediction
  time minus the view's TTL to its last prediction time. Rows outside that
  range fail the join's own time predicates, so the answer is unchanged.
- Feast hands each Python on-demand view the *whole* result table as Python
  lists (``Table.to_pydict``), which is most of the runtime and a few GB of
  objects. The on-demand views here run on just the columns they read.
- The entity rows, the result and its copies (``to_df``, ``drop``,
  ``sort_values``) all live in pandas at once. Entity rows wait in a temporary
  Parquet file; each chunk is audited and sorted as Arrow and goes to its own
  temporary Parquet file; the training set's file is then written from those,
  one chunk at a time, and fingerprinted as it is written. With an output path,
  the whole set is never in memory at once (its pandas frame alone is about
  1.3 GB at 10x); it is read back only when someone asks for ``frame``.

The chunks are disjoint ranges of prediction time in increasing order, so
sorting each one sorts the whole set: the frame, and so the fingerprint, is the
same for any chunk size (``tests/data/test_training_set.py`` checks this
against a single Feast call).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_repo.atomic_io import atomic_path, write_json, write_parquet
from feature_repo.feast_compat import (
    declared_arrow_types,
    forget_retrieval_tables,
    historical_features,
)
from feature_repo.feature_build import published
from feature_repo.leftovers import scratch_folder, sweep_scratch
from feature_repo.partition_checksums import PartitionVerifier, as_of_partitions, day_partitions
from feature_repo.raw_layer import KNOWABLE_AT, RawLayer, end_of_day, partition_day
from feature_repo.settings import PROJECT_ROOT, Settings
from feature_repo.store import dataset_module, open_store

log = logging.getLogger(__name__)

AUDIT_COLUMN = "source_ts"
PREDICTION_TIME = "event_timestamp"
ROW_ID = "flight_id"
SORT_KEYS = [PREDICTION_TIME, ROW_ID]
# Entity rows per retrieval. Transient memory grows with it (Feast's query and
# Arrow copies of one chunk); so does each chunk's join work (rows x the
# history its window needs); fixed costs per Feast call (~0.5 s) grow with the
# number of chunks. 2^16 keeps a chunk near 100 MB and the fixed costs small.
CHUNK_ROWS = 65_536
FINGERPRINT_BLOCK_ROWS = 1 << 18
ENTITY_SORT_MEMORY = "256MB"


class LeakageError(RuntimeError):
    """A feature value was built from data newer than its prediction time."""


class UnreadablePartition(RuntimeError):
    """The offline store could not read a feature partition (named by its real path)."""


@dataclass
class TrainingSet:
    """A training set's manifest, and its rows: in memory, or in the file at ``path``
    (read on first use of ``frame``)."""

    manifest: dict[str, Any]
    path: Path | None = None
    loaded: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def frame(self) -> pd.DataFrame:
        if self.loaded is None:
            if self.path is None:
                raise RuntimeError("this training set has neither rows in memory nor a file")
            self.loaded = pd.read_parquet(self.path)
        return self.loaded


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Fingerprint:
    """A content hash that ignores file encoding: same rows and columns, same hash.

    Row hashes depend on their own row only, so feeding a frame in consecutive
    blocks gives the bytes of one whole-frame call (pandas hashes text through a
    copy of each column as new strings: about 0.5 GB for the whole frame at 10x).
    """

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.header: str | None = None

    def add(self, block: pd.DataFrame) -> None:
        header = "|".join(f"{c}:{block[c].dtype}" for c in block.columns)
        if self.header is None:
            self.header = header
            self.digest.update(header.encode())
        elif header != self.header:
            raise RuntimeError(f"a block's columns or dtypes differ: {header} vs {self.header}")
        for start in range(0, len(block), FINGERPRINT_BLOCK_ROWS):
            rows = block.iloc[start : start + FINGERPRINT_BLOCK_ROWS]
            self.digest.update(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes())

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def fingerprint(frame: pd.DataFrame) -> str:
    hasher = Fingerprint()
    hasher.add(frame)
    return hasher.hexdigest()


# -- entity rows -------------------------------------------------------------------
def raw_watermark_instant(settings: Settings) -> datetime:
    """The instant the raw layer is published up to: everything knowable before it is in.

    The watermark is a day (the end of which is the instant) or already an instant.
    """
    watermark: date | datetime | None = RawLayer(settings.raw_dir).watermark()
    if watermark is None:
        raise RuntimeError("no raw data published; run `python -m feature_repo ingest` first")
    if isinstance(watermark, datetime):
        return watermark if watermark.tzinfo else watermark.replace(tzinfo=UTC)
    return end_of_day(watermark)


def resolve_as_of(settings: Settings, end: date, as_of: datetime | None) -> datetime:
    """The instant a build is as of: ``as_of``, else the raw watermark; checked against both."""
    watermark = raw_watermark_instant(settings)
    if as_of is None:
        as_of = watermark
    elif as_of.tzinfo is None:
        raise ValueError(f"--as-of {as_of.isoformat()} needs a UTC offset, e.g. +00:00")
    elif as_of > watermark:
        raise ValueError(
            f"--as-of {as_of.isoformat()} is after the raw watermark {watermark.isoformat()}: "
            "nothing is published about that time yet"
        )
    if as_of < end_of_day(end):
        raise RuntimeError(
            f"as of {as_of.isoformat()} the window's last day {end} is not over yet; "
            f"ingest through {end} first (or pass a later --as-of)"
        )
    return as_of.astimezone(UTC)


def _connect_raw_as_of(settings: Settings, tables: list[str], as_of: datetime) -> Any:
    """Raw tables exactly as they were published when the watermark was ``as_of``.

    Only events knowable before ``as_of`` are visible (day partitions are by the day
    an event became knowable, so later days are not even read), so a set built as of
    an instant does not change however much raw data arrives afterwards.
    """
    raw = RawLayer(settings.raw_dir)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    last_day = (as_of - timedelta(microseconds=1)).date()
    for table, paths in published(raw, tables).items():
        files = [p for p in paths if (day := partition_day(p)) is None or day <= last_day]
        listing = ", ".join(f"'{_sql_quote(f)}'" for f in files or paths[:1])
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{listing}], "
            f"hive_partitioning = false) WHERE {KNOWABLE_AT} < TIMESTAMPTZ '{as_of.isoformat()}'"
            + ("" if files else " AND false")
        )
    return con


def _entity_query(
    settings: Settings, start: date, end: date, as_of: datetime
) -> tuple[duckdb.DuckDBPyConnection, str, dict[str, Any]]:
    """A connection over the raw layer as of ``as_of``, the dataset's entity SQL and its
    parameters."""
    dataset = dataset_module(settings)
    con = _connect_raw_as_of(settings, ["departures", "arrivals"], as_of)
    params = {
        "start": datetime(start.year, start.month, start.day, tzinfo=UTC),
        "end": end_of_day(end),
        "lead_us": int(settings.prediction_lead / timedelta(microseconds=1)),
    }
    return con, dataset.TRAINING_ENTITIES_SQL, params


def _as_entity_frame(frame: pd.DataFrame) -> pd.DataFrame:
    for column in (PREDICTION_TIME, "sched_dep_ts"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def entity_rows(
    settings: Settings, start: date, end: date, as_of: datetime | None = None
) -> pd.DataFrame:
    """Labelled flights scheduled in [start, end] (UTC days), at their prediction times."""
    con, sql, params = _entity_query(settings, start, end, resolve_as_of(settings, end, as_of))
    try:
        return _as_entity_frame(con.execute(sql, params).fetch_df())
    finally:
        con.close()


class _EntityFile:
    """The window's entity rows in a temporary Parquet file, read back chunk by chunk.

    At 10x the rows take about 0.6 GB as pandas objects; on disk they cost no memory.
    """

    def __init__(
        self, settings: Settings, start: date, end: date, as_of: datetime, path: Path
    ) -> None:
        writer, sql, params = _entity_query(settings, start, end, as_of)
        try:
            # Left alone, the join and sort peak near 1.3 GB at 10x, more than the whole
            # retrieval after it; with a limit DuckDB sorts out of core, beside the file.
            writer.execute(f"SET memory_limit = '{ENTITY_SORT_MEMORY}'")
            writer.execute(f"SET temp_directory = '{_sql_quote(path.parent / 'duckdb-tmp')}'")
            writer.execute(f"COPY ({sql}) TO '{_sql_quote(path)}' (FORMAT parquet)", params)
        finally:
            # DuckDB keeps its memory until the database closes.
            writer.close()
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        self.source = f"read_parquet('{_sql_quote(path)}')"
        days = self.con.execute(
            f"SELECT date_trunc('day', {PREDICTION_TIME}) AS day, count(*) FROM {self.source} "
            "GROUP BY day ORDER BY day"
        ).fetchall()
        self.days: list[tuple[datetime, int]] = [(day, int(n)) for day, n in days]
        self.rows = sum(n for _, n in self.days)
        self.columns: list[str] = [
            row[0] for row in self.con.execute(f"DESCRIBE SELECT * FROM {self.source}").fetchall()
        ]

    def chunks(
        self, max_rows: int, since: datetime | None = None
    ) -> Iterator[tuple[datetime, datetime]]:
        """Whole UTC days of prediction time, ``[first, last)``, about ``max_rows`` rows each;
        with ``since``, only the days from it on (the earlier ones are reused)."""
        days = [(day, n) for day, n in self.days if since is None or day >= since]
        first: datetime | None = None
        rows = 0
        for day, n in days:
            if first is not None and rows + n > max_rows:
                yield first, day
                first, rows = None, 0
            first = first or day
            rows += n
        if first is not None:
            yield first, days[-1][0] + timedelta(days=1)

    def arrow(self, before: datetime) -> pa.Table:
        """The entity rows predicted before ``before``, sorted as a training set is."""
        query = f"SELECT * FROM {self.source} WHERE {PREDICTION_TIME} < $before"
        reader = self.con.execute(query, {"before": before}).to_arrow_reader()
        assert reader is not None  # a SELECT always has a result
        return sorted_rows(reader.read_all())

    def read(self, first: datetime, last: datetime) -> pd.DataFrame:
        frame = self.con.execute(
            f"SELECT * FROM {self.source} "
            f"WHERE {PREDICTION_TIME} >= $first AND {PREDICTION_TIME} < $last",
            {"first": first, "last": last},
        ).fetch_df()
        return _as_entity_frame(frame)

    def close(self) -> None:
        self.con.close()


def _sql_quote(path: Path) -> str:
    return str(path).replace("'", "''")


# -- reusing the rows of a stored set ---------------------------------------------
@dataclass(frozen=True)
class Reused:
    """Rows taken from a stored set instead of Feast: all its rows predicted before ``until``."""

    source: Path
    rows: int
    until: datetime
    part: Path


def verified_rows(path: Path, expected_fingerprint: str) -> pa.Table | None:
    """The rows of the set at ``path``, if they still hash to ``expected_fingerprint``."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        log.warning("stored training set unreadable", extra={"path": str(path), "error": str(err)})
        return None
    if fingerprint(table.to_pandas()) != expected_fingerprint:
        log.warning("stored training set does not match its fingerprint", extra={"path": str(path)})
        return None
    return table


def _day_bounds(times: pa.ChunkedArray) -> dict[datetime, tuple[int, int]]:
    """Per UTC day of ``times`` (sorted), the ``[first, last)`` row offsets of its rows."""
    days = pc.floor_temporal(times, unit="day").combine_chunks()
    if days.null_count or len(days) == 0:
        return _day_bounds_slow(days)
    # One Python datetime per day, not per row: converting every row took seconds.
    codes = days.cast(pa.int64()).to_numpy()
    _, firsts = np.unique(codes, return_index=True)
    lasts = len(codes) - np.unique(codes[::-1], return_index=True)[1]
    order = np.argsort(firsts, kind="stable")  # in order of appearance, as the rows are
    return {days[int(firsts[i])].as_py(): (int(firsts[i]), int(lasts[i])) for i in order}


def _day_bounds_slow(days: pa.Array) -> dict[datetime, tuple[int, int]]:
    """Row by row: for rows without a time, whose day (None) the codes cannot hold."""
    bounds: dict[datetime, tuple[int, int]] = {}
    for i, day in enumerate(days.to_pylist()):
        first, _ = bounds.get(day, (i, i))
        bounds[day] = (first, i + 1)
    return bounds


def _reuse_stored_rows(
    entities: _EntityFile, stored: pa.Table, source: Path, scratch: Path
) -> Reused | None:
    """The stored set's leading days whose entity rows (flights, prediction times, labels,
    request inputs) are exactly this build's, written as a part in ``scratch``.

    A row's features depend only on its entity row and on feature values as of its
    prediction time, which are final once that time has passed (the raw layer is
    append-only by the instant data became knowable, and the leakage guard holds every
    value to data older than the prediction). So a day whose entity rows are unchanged
    has the very rows a fresh retrieval would return; the first day that differs (a
    label that arrived since, the window's last, partial day) and every later day are
    retrieved afresh. Equality is checked, not assumed, day by day.
    """
    if stored.num_rows == 0:
        return None
    columns = [c for c in entities.columns if c in stored.column_names]
    if len(columns) != len(entities.columns):
        return None
    stored_times = stored.column(PREDICTION_TIME)
    end = pc.max(stored_times).as_py() + timedelta(microseconds=1)
    fresh = entities.arrow(end)
    fresh_days = _day_bounds(fresh.column(PREDICTION_TIME))
    stored_days = _day_bounds(stored_times)
    try:
        old = stored.select(columns).cast(fresh.schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    old_frame, new_frame = old.to_pandas(), fresh.to_pandas()
    until: datetime | None = None
    for day in sorted(set(fresh_days) | set(stored_days)):
        a, b = stored_days.get(day, (0, 0))
        c, d = fresh_days.get(day, (0, 0))
        same = b - a == d - c and (
            old_frame.iloc[a:b]
            .reset_index(drop=True)
            .equals(new_frame.iloc[c:d].reset_index(drop=True))
        )
        if not same:
            until = day
            break
    if until is None:  # every stored day matches; its last day may still be partial
        until = max(stored_days)
    keep = pc.less(stored_times, pa.scalar(until, stored_times.type))
    rows = stored.filter(keep)
    if rows.num_rows == 0:
        return None
    part = scratch / "part-reused.parquet"
    pq.write_table(rows, part, compression="zstd")
    return Reused(source, rows.num_rows, until, part)


# -- what to ask Feast for ---------------------------------------------------------
def feature_refs(store: Any, service_name: str) -> tuple[list[str], list[str]]:
    """The service's feature references, plus the audit references for the leakage guard."""
    service = store.get_feature_service(service_name)
    refs: list[str] = []
    audit: list[str] = []
    for projection in service.feature_view_projections:
        view = projection.name_to_use()
        refs.extend(f"{view}:{feature.name}" for feature in projection.features)
        try:
            source_view = store.get_feature_view(projection.name)
        except Exception:  # on-demand views have no batch source to audit
            continue
        if any(f.name == AUDIT_COLUMN for f in source_view.features):
            audit.append(f"{view}:{AUDIT_COLUMN}")
    return refs, audit


def definitions_digest(store: Any, service_name: str, sql_dir: Path) -> str:
    """A digest of what decides a training set's feature values besides the raw data: the
    feature tables' SQL, and each view the service reads (entities, features and types,
    TTL, timestamp fields; an on-demand view's source code).

    A stored set is reused only under the same digest, so a changed query or TTL builds
    the set again instead of reusing rows computed by the old one. Paths and Feast's
    registry timestamps stay out (a copied data dir, a fresh ``apply``), and so does the
    pickled UDF, whose bytes differ from one process to the next.
    """
    service = store.get_feature_service(service_name)
    parts: list[Any] = [
        (path.name, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(sql_dir.glob("*.sql"))
    ]
    for projection in service.feature_view_projections:
        fields = [(f.name, str(f.dtype)) for f in projection.features]
        try:
            view = store.get_feature_view(projection.name)
        except Exception:  # an on-demand view (Feast's not-found errors share no base)
            odfv = store.get_on_demand_feature_view(projection.name)
            sources = sorted([*odfv.source_feature_view_projections, *odfv.source_request_sources])
            code = getattr(odfv.feature_transformation, "udf_string", "")
            parts.append(("on_demand", odfv.name, fields, sources, code))
            continue
        source = view.batch_source
        parts.append(
            (
                "view",
                view.name,
                fields,
                sorted(view.entities),
                str(view.ttl),
                source.timestamp_field,
                source.created_timestamp_column,
            )
        )
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


@dataclass
class _Plan:
    """The batch views and references ``FeatureStore.get_historical_features`` would
    hand the offline store for ``refs``, in the same order (it decides the column
    order), and the on-demand views to run on the result."""

    views: list[Any]
    batch_refs: list[str]
    on_demand: list[Any]
    on_demand_columns: dict[str, list[str]] = field(default_factory=dict)
    # Each batch feature's column (full name) and the Arrow type its view declares.
    feature_types: dict[str, pa.DataType] = field(default_factory=dict)


def _plan(store: Any, refs: list[str]) -> _Plan:
    from feast.on_demand_feature_view import OnDemandFeatureView

    on_demand_by_name = {view.name: view for view in store.list_on_demand_feature_views()}
    view_names: list[str] = []
    batch_refs: list[str] = []
    inputs: list[str] = []
    on_demand_columns: dict[str, list[str]] = {}
    for ref in refs:
        name, feature = ref.split(":", 1)
        odfv = on_demand_by_name.get(name)
        if odfv is None:
            view_names.append(name)
            batch_refs.append(ref)
            continue
        on_demand_columns.setdefault(name, []).append(f"{odfv.projection.name_to_use()}__{feature}")
        for projection in odfv.source_feature_view_projections.values():
            view_names.append(projection.name)
            inputs.extend(f"{projection.name}:{f.name}" for f in projection.features)
    batch_refs.extend(ref for ref in dict.fromkeys(inputs) if ref not in batch_refs)
    on_demand = OnDemandFeatureView.get_requested_odfvs(refs, store.project, store.registry)
    views = [store.get_feature_view(name) for name in dict.fromkeys(view_names)]
    return _Plan(
        views=views,
        batch_refs=batch_refs,
        on_demand=on_demand,
        on_demand_columns=on_demand_columns,
        feature_types=declared_arrow_types(views),
    )


def _run_on_demand(table: pa.Table, plan: _Plan) -> pa.Table:
    """Append each on-demand view's requested outputs, as ``RetrievalJob.to_arrow`` does,
    but computed from the columns the view reads rather than the whole table."""
    for odfv in plan.on_demand:
        inputs = list(odfv.get_request_data_schema())
        for projection in odfv.source_feature_view_projections.values():
            inputs.extend(f"{projection.name}__{f.name}" for f in projection.features)
        transformed = odfv.transform_arrow(table.select(inputs), full_feature_names=True)
        wanted = plan.on_demand_columns.get(odfv.name, [])
        for column in transformed.column_names:
            if column in wanted:
                table = table.append_column(column, transformed[column])
    return table


class _PrunedSources:
    """Per chunk, each feature view with its source narrowed to the day partitions that
    can hold an as-of match, as links in a scratch folder (as ``feature_repo.materialize``
    does for its windows). Views whose source is not day-partitioned are left alone.

    Every partition a chunk can read is first checked against its table's checksums
    (each file once per build), so a corrupt file is refused under its own path."""

    def __init__(self, views: list[Any], scratch: Path, verifier: PartitionVerifier) -> None:
        self.views = views
        self.scratch = scratch
        self.verifier = verifier
        self.partitions: dict[str, list[tuple[date, Path]]] = {
            view.name: day_partitions(view.batch_source) for view in views
        }
        self.links: dict[str, Path] = {}  # this chunk's links, to the files they name

    def narrowed(self, first: datetime, last: datetime, folder: str) -> list[Any]:
        from feast import FileSource

        out = []
        self.links = {}
        for view in self.views:
            partitions = self.partitions[view.name]
            if not partitions:
                out.append(view)
                continue
            files = as_of_partitions(partitions, view.ttl, first, last)
            # Without a TTL (zero means "never expires") every earlier day can hold
            # the match, and DuckDB already skips later days by itself.
            if not view.ttl:
                self.verifier.verify(files)
                out.append(view)
                continue
            # A source must match some file; a partition outside the range only
            # adds rows that the join's own time predicates then reject.
            files = files or [partitions[0][1]]
            self.verifier.verify(files)
            links = self.scratch / folder / view.name
            links.mkdir(parents=True)
            for i, path in enumerate(files):
                link = links / f"{i:05d}.parquet"
                link.symlink_to(path)
                self.links[str(link)] = path
            source = view.batch_source
            pruned = copy.copy(view)
            pruned.batch_source = FileSource(
                name=source.name,
                path=str(links / "*.parquet"),
                timestamp_field=source.timestamp_field,
                created_timestamp_column=source.created_timestamp_column,
                field_mapping=source.field_mapping,
            )
            out.append(pruned)
        return out

    def real_paths(self, text: str) -> str:
        """``text`` (a reader's error) with each link replaced by the file it names."""
        for link, path in self.links.items():
            text = text.replace(link, str(path))
        return text


# -- the leakage guard -------------------------------------------------------------
def _future_values(frame: pd.DataFrame, audit_columns: list[str]) -> dict[str, tuple[int, str]]:
    """Per audit column: rows whose source is newer than their prediction time, and an example."""
    prediction_epoch = (frame[PREDICTION_TIME] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(
        seconds=1
    )
    found: dict[str, tuple[int, str]] = {}
    for column in audit_columns:
        source = frame[column]
        future = source.notna() & (source > prediction_epoch)
        if future.any():
            row = frame.loc[future.idxmax()]
            seen = datetime.fromtimestamp(int(row[column]), UTC).isoformat()
            example = (
                f"flight {row.get('flight_id', '?')} predicted at "
                f"{row[PREDICTION_TIME].isoformat()} saw data from {seen}"
            )
            found[column] = (int(future.sum()), example)
    return found


def _leakage_message(found: dict[str, tuple[int, str]]) -> str:
    problems = [
        f"{column.split('__')[0]}: {count} rows use data from after the "
        f"prediction time (e.g. {example})"
        for column, (count, example) in found.items()
    ]
    return "leakage guard: " + "; ".join(problems)


def check_leakage(frame: pd.DataFrame, audit_columns: list[str]) -> None:
    found = _future_values(frame, audit_columns)
    if found:
        raise LeakageError(_leakage_message(found))


class _LeakageTally:
    """The guard over chunks: counts add up, the first example of each view is kept."""

    def __init__(self, audit_columns: list[str]) -> None:
        self.audit_columns = audit_columns
        self.found: dict[str, tuple[int, str]] = {}

    def add(self, table: pa.Table) -> None:
        columns = [PREDICTION_TIME, "flight_id", *self.audit_columns]
        for column, (count, example) in _future_values(
            table.select(columns).to_pandas(), self.audit_columns
        ).items():
            previous, first_example = self.found.get(column, (0, example))
            self.found[column] = (previous + count, first_example)

    def check(self) -> None:
        if self.found:
            ordered = {c: self.found[c] for c in self.audit_columns if c in self.found}
            raise LeakageError(_leakage_message(ordered))


# -- retrieval ---------------------------------------------------------------------
def _retrieve(
    store: Any,
    entities: _EntityFile,
    refs: list[str],
    audit_columns: list[str],
    scratch: Path,
    verifier: PartitionVerifier,
    since: datetime | None = None,
) -> list[Path]:
    """Features for every entity row (predicted from ``since`` on), audited, without the
    audit columns: one sorted Parquet file per chunk in ``scratch``, in time order."""
    plan = _plan(store, refs)
    sources = _PrunedSources(plan.views, scratch, verifier)
    tally = _LeakageTally(audit_columns)
    parts: list[Path] = []
    for i, (first, last) in enumerate(entities.chunks(CHUNK_ROWS, since)):
        chunk = entities.read(first, last)
        table = _fetch_chunk(store, sources, plan, chunk, (first, last), scratch / f"chunk-{i:05d}")
        if table.num_rows != len(chunk):
            raise RuntimeError(
                f"feature retrieval returned {table.num_rows} rows for {len(chunk)} entity "
                f"rows (prediction times {first:%Y-%m-%d} to {last:%Y-%m-%d})"
            )
        tally.add(table)
        part = scratch / f"part-{i:05d}.parquet"
        pq.write_table(sorted_rows(table.drop_columns(audit_columns)), part, compression="zstd")
        parts.append(part)
        del table
        pa.default_memory_pool().release_unused()
    tally.check()
    return parts


def _fetch_chunk(
    store: Any,
    sources: _PrunedSources,
    plan: _Plan,
    chunk: pd.DataFrame,
    prediction_times: tuple[datetime, datetime],
    folder: Path,
) -> pa.Table:
    """One chunk's features from Feast (sources pruned into ``folder``, removed after),
    with the on-demand views applied."""
    first, last = prediction_times
    try:
        job = historical_features(
            store, sources.narrowed(first, last, folder.name), plan.batch_refs, chunk
        )
        types = dict(plan.feature_types)
        for column in pa.Schema.from_pandas(chunk, preserve_index=False):
            types[column.name] = column.type
        table = _run_on_demand(engine_neutral_types(job.to_arrow(), types), plan)
        forget_retrieval_tables(job)
        return table
    except Exception as err:
        # DuckDB names the file it could not read: a link in the scratch folder, which
        # says nothing to whoever must repair the partition behind it.
        named = sources.real_paths(str(err))
        if named == str(err):
            raise
        raise UnreadablePartition(f"cannot read a feature partition: {named}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


UTC_MICROS = pa.timestamp("us", tz="UTC")


def engine_neutral_types(table: pa.Table, types: dict[str, pa.DataType]) -> pa.Table:
    """Every column in the type DuckDB's offline store returns it in, whichever store
    answered: an entity column as the entity rows have it, a feature as its view
    declares it, and every timestamp in UTC microseconds. Feast's Spark offline store
    converts through pandas: entity timestamps come back naive (its session works in
    UTC) in nanoseconds, integers as int64, and an integer feature with a null in the
    chunk as double. The chunks of one set must agree to be concatenated, and the set
    (its fingerprint) must not depend on the engine."""
    for index, column in enumerate(table.schema):
        wanted = UTC_MICROS if pa.types.is_timestamp(column.type) else types.get(column.name)
        if wanted is not None and column.type != wanted:
            # A naive timestamp is cast as the UTC it is; a double with integral values
            # and nulls (pandas' NaN) casts to an integer exactly, or fails loudly.
            table = table.set_column(index, column.name, table.column(index).cast(wanted))
    return table


def sorted_rows(table: pa.Table) -> pa.Table:
    order = pc.sort_indices(table, sort_keys=[(key, "ascending") for key in SORT_KEYS])
    return pc.take(table, order)


@dataclass
class _Written:
    rows: int
    positives: int
    nulls: dict[str, int]
    fingerprint: str


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns, in its order and types (absent ones null)."""
    columns = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _whole_frame_dtypes(block: pd.DataFrame, schema: pa.Schema, nullable: set[str]) -> pd.DataFrame:
    """A block converted alone, given the dtypes the whole set converts to: an integer
    (or boolean) column with a null anywhere becomes float64 (object) in the whole
    frame, even in a block where it has none."""
    for f in schema:
        if f.name not in nullable or block[f.name].hasnans:
            continue
        if pa.types.is_integer(f.type):
            block[f.name] = block[f.name].astype("float64")
        elif pa.types.is_boolean(f.type):
            block[f.name] = block[f.name].astype(object)
    return block


def _write_parts(parts: list[Path], target: Path, label: str) -> _Written:
    """Concatenate the chunk files into ``target``, one chunk in memory at a time, and
    fingerprint the rows exactly as :func:`fingerprint` would the whole frame."""
    schema = pa.unify_schemas([pq.read_schema(part) for part in parts], promote_options="default")
    nullable = set()
    for part in parts:
        metadata = pq.ParquetFile(part).metadata
        for group in range(metadata.num_row_groups):
            for column in range(metadata.num_columns):
                chunk = metadata.row_group(group).column(column)
                if chunk.statistics is None or chunk.statistics.null_count != 0:
                    nullable.add(chunk.path_in_schema)
    hasher = Fingerprint()
    rows = positives = 0
    nulls: dict[str, int] = {}
    with pq.ParquetWriter(target, schema, compression="zstd") as writer:
        for part in parts:
            table = _conform(pq.read_table(part), schema)
            writer.write_table(table)
            block = _whole_frame_dtypes(table.to_pandas(), schema, nullable)
            del table
            hasher.add(block)
            rows += len(block)
            positives += int(block[label].sum())
            for name, count in block.isna().sum().items():
                nulls[name] = nulls.get(name, 0) + int(count)
            del block
    return _Written(rows, positives, nulls, hasher.hexdigest())


def build_training_set(
    settings: Settings,
    start: date,
    end: date,
    store: Any | None = None,
    out: Path | None = None,
    as_of: datetime | None = None,
    verifier: PartitionVerifier | None = None,
    reuse: tuple[Path, str] | None = None,
) -> TrainingSet:
    """The training set for flights whose prediction time falls in ``start..end`` (UTC),
    as it would have been built when the raw watermark was ``as_of`` (default: now's
    watermark): only flights whose label was knowable by then, each with features as
    of its prediction time (which is before its label, so before ``as_of``).

    With ``out``, the set is written there (Parquet, and its manifest beside it, both
    atomically) without ever being held in memory whole; without, it is returned in
    memory.

    Every feature partition the build reads is checked against its checksum first
    (``verifier``, by default a new :class:`PartitionVerifier`).

    ``reuse`` names a stored set of the same start (its path and fingerprint): if its
    file still hashes to the fingerprint, its leading days whose entity rows are
    unchanged are taken from it rather than from Feast (:func:`_reuse_stored_rows`).
    The set, and so its fingerprint, is the one a build from scratch gives.
    """
    started = time.perf_counter()
    verifier = verifier or PartitionVerifier()
    as_of = resolve_as_of(settings, end, as_of)
    dataset = dataset_module(settings)
    store = store or open_store(settings)
    refs, audit_refs = feature_refs(store, dataset.FEATURE_SERVICE_NAME)
    audit_columns = [ref.replace(":", "__") for ref in audit_refs]
    label = dataset.LABEL_COLUMN
    scratch_root = settings.state_dir / "scratch"
    sweep_scratch(scratch_root)  # what builds killed before us left
    with scratch_folder(scratch_root, "training-set.") as scratch:
        entities = _EntityFile(settings, start, end, as_of, scratch / "entities.parquet")
        reused: Reused | None = None
        try:
            if entities.rows == 0:
                raise RuntimeError(f"no labelled flights between {start} and {end}")
            if reuse is not None and (stored := verified_rows(*reuse)) is not None:
                reused = _reuse_stored_rows(entities, stored, reuse[0], scratch)
                del stored
            parts = _retrieve(
                store,
                entities,
                refs + audit_refs,
                audit_columns,
                scratch,
                verifier,
                since=reused.until if reused else None,
            )
            if reused is not None:
                parts.insert(0, reused.part)
        finally:
            entities.close()
        staged = scratch / "training-set.parquet"
        written = _write_parts(parts, staged, label)
        loaded = None if out else pd.read_parquet(staged)
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out) as tmp_out:
                shutil.move(staged, tmp_out)
    log.debug(
        "feature partitions verified",
        extra={
            "files": len(verifier.verified),
            "bytes": verifier.bytes,
            "seconds": round(verifier.seconds, 3),
        },
    )
    feature_columns = [ref.replace(":", "__") for ref in refs]
    manifest = {
        "window": {"start": start.isoformat(), "end": end.isoformat(), "timezone": "UTC"},
        "feature_service": dataset.FEATURE_SERVICE_NAME,
        "features": feature_columns,
        "label": label,
        "rows": written.rows,
        "positive_rate": round(written.positives / written.rows, 6),
        "null_counts": {name: written.nulls.get(name, 0) for name in feature_columns},
        "prediction_lead_minutes": int(settings.prediction_lead.total_seconds() // 60),
        "definitions": definitions_digest(store, dataset.FEATURE_SERVICE_NAME, dataset.SQL_DIR),
        "as_of": as_of.isoformat(),
        "raw_watermark": str(RawLayer(settings.raw_dir).watermark()),
        "fingerprint": written.fingerprint,
        "git_commit": git_commit(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if reused is not None:
        manifest["reused"] = {
            "from": reused.source.name,
            "rows": reused.rows,
            "predicted_before": reused.until.isoformat(),
        }
    if out:
        manifest["path"] = str(out)
        write_json(manifest, manifest_path(out))
        return TrainingSet(manifest, path=out)
    return TrainingSet(manifest, loaded=loaded)


def write_training_set(training_set: TrainingSet, out: Path) -> TrainingSet:
    """Write ``<out>`` (Parquet) and ``<out>.manifest.json`` side by side, atomically."""
    table = pa.Table.from_pandas(training_set.frame, preserve_index=False)
    write_parquet(table, out)
    manifest = dict(training_set.manifest, path=str(out))
    write_json(manifest, manifest_path(out))
    return TrainingSet(manifest, path=out, loaded=training_set.frame)


def manifest_path(out: Path) -> Path:
    return out.with_name(out.stem + ".manifest.json")


def null_counts(frame: pd.DataFrame, columns: list[str]) -> dict[str, int]:
    return {c: int(frame[c].isna().sum()) for c in columns}
