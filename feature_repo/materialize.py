"""The pipeline's one step, up to "now": ingest, build features, materialize.

One run (``Materializer.run``): publish every raw event knowable by "now"
(intraday: the open day's partition grows with each run), extend the feature
tables to the same instant, then push each feature view's window
``(watermark, end]`` into the online store through Feast's own
materialization engine, so online reads stay consistent with Feast's
definitions. The wall-clock scheduler, a replay (``schedule --replay``, the
serving replay of ``make run``) and ``materialize --now`` all run this step;
they differ only in where "now" comes from.

Why not ``FeatureStore.materialize_incremental``:

- its first window starts at the *wall clock* minus the TTL, which breaks a
  replay of 2013;
- Feast's DuckDB source read covers the whole ``date=*`` history, so the
  cost of each run would grow with history. Each view's window is instead
  handed to Feast's engine (``feature_repo.feast_engine.WindowEngine``, set in
  ``feature_store.yaml``) with only the day partitions the window touches;
  it selects the newest row per entity there as Feast's materialization query
  does, and writes through Feast's conversion and ``online_write_batch``;
- it keeps no record of rows written. The engine's job reports the rows it
  wrote and the newest event among them.

``end`` is ``min(now, the instant the feature tables are built to)``: a run
never writes values from after "now", and never moves a watermark past data
that has not been computed yet (which would leave a gap). The watermark
of a view moves only after its write succeeded, so a run killed half-way is
redone by the next one.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import duckdb

from feature_repo.atomic_io import write_text
from feature_repo.bounds import WindowRefused
from feature_repo.clock import Clock
from feature_repo.feast_compat import provider
from feature_repo.leftovers import sweep_scratch
from feature_repo.redis_clients import wait_for_replicas
from feature_repo.run_lock import OnlineStoreUnavailable, run_lock
from feature_repo.settings import Settings
from feature_repo.state_files import MaterializationState

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)
IN_FLIGHT_PREFIX = "materialize-writing."


class RunSkipped(RuntimeError):
    """Another materialization holds the lock."""


class NowBehindWatermark(WindowRefused):
    """A run's "now" lies before what the online store already holds."""


class NotApplied(RuntimeError):
    """The Feast registry holds no online feature views: ``apply`` never ran here."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            f"no feature views are registered in {settings.feast_dir / 'registry.db'}; "
            "run `python -m feature_repo apply` first"
        )


@dataclass
class ViewResult:
    view: str
    window_start: datetime | None
    window_end: datetime | None
    rows: int = 0
    newest_event: datetime | None = None
    seconds: float = 0.0


@dataclass
class RunResult:
    now: datetime
    end: datetime
    views: list[ViewResult] = field(default_factory=list)
    ingested_through: datetime | None = None
    seconds: float = 0.0
    kind: str = "incremental"
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def rows(self) -> int:
        return sum(v.rows for v in self.views)

    def log_record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "started_at": self.started_at.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "now": self.now.isoformat(),
            "ingested_through": _iso(self.ingested_through) if self.ingested_through else None,
            "end": self.end.isoformat(),
            "rows": {v.view: v.rows for v in self.views},
            "windows": {
                v.view: [
                    v.window_start.isoformat() if v.window_start else None,
                    v.window_end.isoformat() if v.window_end else None,
                ]
                for v in self.views
            },
            "freshness_seconds": {
                v.view: round((self.now - v.newest_event).total_seconds())
                for v in self.views
                if v.newest_event
            },
            "seconds": round(self.seconds, 3),
        }


def check_online_store(settings: Settings) -> None:
    """Fail fast, and by name, when Redis is down, rather than deep inside Feast."""
    if not settings.redis_url:
        return
    import redis

    from feature_repo.redis_clients import open_redis

    try:
        client = open_redis(settings)
        try:
            client.ping()
        finally:
            client.close()
    except redis.exceptions.RedisError as err:
        raise OnlineStoreUnavailable(f"cannot reach Redis at {settings.redis_url}: {err}") from None


def _partition_files(features_dir: Path, view: str, start: datetime, end: datetime) -> list[Path]:
    """The day partitions of ``view`` that ``[start, end]`` touches, oldest first."""
    try:
        days = {name for name in os.listdir(features_dir / view) if name.startswith("date=")}
    except FileNotFoundError:
        return []
    files = []
    day = start.date()
    while day <= end.date():
        name = f"date={day.isoformat()}"
        if name in days and (path := features_dir / view / name / "part-0.parquet").exists():
            files.append(path)
        day += timedelta(days=1)
    return files


def _window_stats(
    files: list[Path], keys: list[str], start: datetime, end: datetime
) -> tuple[int, datetime | None]:
    """Rows Feast writes for the window (the latest row per entity), newest event.

    Only needed when the configured engine does not report them itself."""
    if not files:
        return 0, None
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    key_list = ", ".join(keys)
    rows, newest = con.execute(
        f"SELECT count(DISTINCT ({key_list})), max(event_timestamp) "
        "FROM read_parquet($files) WHERE event_timestamp >= $start AND event_timestamp <= $end",
        {"files": [str(f) for f in files], "start": start, "end": end},
    ).fetchone() or (0, None)
    con.close()
    return int(rows), newest.astimezone(UTC) if newest else None


class OnlineStoreMarker:
    """A random token stored *inside* the online store, mirrored in the state file."""

    REDIS_KEY = "feastline:online_store_marker"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _sqlite_marker_path(self) -> Path:
        return self.settings.feast_dir / "online_store.marker"

    def read(self) -> str | None:
        if self.settings.redis_url:
            from feature_repo.redis_clients import open_redis

            client = open_redis(self.settings)
            try:
                value = cast(bytes | None, client.get(self.REDIS_KEY))
            finally:
                client.close()
            return value.decode() if value else None
        db = self.settings.feast_dir / "online_store.db"
        path = self._sqlite_marker_path()
        if not db.exists() or not path.exists():
            return None
        return path.read_text().strip()

    def create(self) -> str:
        token = uuid.uuid4().hex
        if self.settings.redis_url:
            from feature_repo.redis_clients import open_redis

            client = open_redis(self.settings)
            try:
                client.set(self.REDIS_KEY, token)
            finally:
                client.close()
        else:
            write_text(token + "\n", self._sqlite_marker_path())
        return token


class Materializer:
    def __init__(self, settings: Settings, store: Any | None = None) -> None:
        self.settings = settings
        self._store = store
        self._views: tuple[Any, list[Any]] | None = None
        self.state = MaterializationState(settings)

    @property
    def store(self) -> Any:
        if self._store is None:
            from feature_repo.store import open_store

            self._store = open_store(self.settings)
        return self._store

    def online_views(self) -> list[Any]:
        """The registry's online feature views; rebuilt only when the registry changed.

        Feast rebuilds every view from its proto on each listing (about 4 ms a run,
        with type checks), which a scheduler ticking through a replay pays per tick.
        """
        store = self.store
        proto_of = getattr(store.registry, "_get_registry_proto", None)
        if proto_of is None:  # a registry without a cached proto: list every time
            return self._registered([v for v in store.list_feature_views() if v.online])
        proto = proto_of(project=store.project, allow_cache=True)
        # With cache_ttl_seconds 0 the registry file is parsed into a new proto each
        # time, so the proto's identity says nothing: its update stamp and version do.
        version = (proto.last_updated.SerializeToString(), proto.version_id)
        if self._views is None or self._views[0] != version:
            self._views = (version, [v for v in store.list_feature_views() if v.online])
        return self._registered(self._views[1])

    def _registered(self, views: list[Any]) -> list[Any]:
        """A run with no views would write nothing and look "up to date": say why."""
        if not views:
            raise NotApplied(self.settings)
        return views

    # -- the run -------------------------------------------------------------
    def run(
        self,
        now: datetime | None = None,
        wait_seconds: float = 0.0,
        ingest: bool = True,
        behind_ok: bool = False,
    ) -> RunResult:
        """One run up to ``now``. A ``now`` before the online store's watermark is refused
        (:class:`NowBehindWatermark`), unless ``behind_ok``: a replay that already warned
        that the store is ahead of it runs those ticks as no-ops."""
        now = (now or Clock(self.settings).now().instant).astimezone(UTC)
        check_online_store(self.settings)
        lock = run_lock(self.settings)
        if not lock.acquire(wait_seconds):
            raise RunSkipped(f"another materialization is running ({lock.holder()}); skipped")
        try:
            return self._run_locked(now, ingest, behind_ok)
        finally:
            lock.release()

    def _run_locked(self, now: datetime, ingest: bool, behind_ok: bool = False) -> RunResult:
        started = time.perf_counter()
        self.online_views()  # before any work: fails with advice when apply never ran
        self._clear_scratch()
        self._forget_watermarks_if_store_was_reset()
        # After the reset check: a store that came back empty has no watermark to be behind.
        if not behind_ok:
            self._refuse_now_behind_watermark(now)
        ingested = self._catch_up_features(now) if ingest else None
        end = min(now, self._features_ready_until())
        result = RunResult(now=now, end=end, ingested_through=ingested)
        windows = []
        for view in self.online_views():
            watermark = self.state.watermark(view.name)
            if watermark is not None:
                start = watermark + ONE_MICROSECOND
            elif view.ttl and view.ttl > timedelta(0):
                start = end - view.ttl  # older values are expired anyway
            else:
                start = EPOCH
            windows.append((view, start, end))

        def finished(views: list[ViewResult]) -> dict[str, Any]:
            result.views = views
            result.seconds = time.perf_counter() - started
            return result.log_record()

        # The run's record is written with the watermarks it moved, in one state write.
        result.views = self._materialize_views(windows, advance=True, finished=finished)
        log.info("materialization run", extra=result.log_record())
        return result

    def backfill(self, start: datetime, end: datetime, wait_seconds: float = 0.0) -> RunResult:
        """Rewrite ``[start, end]`` into the online store, then re-assert newer values.

        Redis skips writes older than what it holds, but SQLite does not; writing
        the window ``(end, watermark]`` again afterwards makes the newest value
        win on both, so a backfill never rolls the online store back.
        """
        check_online_store(self.settings)
        lock = run_lock(self.settings)
        if not lock.acquire(wait_seconds):
            raise RunSkipped(f"another materialization is running ({lock.holder()}); skipped")
        try:
            started = time.perf_counter()
            self.online_views()
            now = Clock(self.settings).now().instant
            ready = min(now, self._features_ready_until())
            end = min(end, ready)
            result = RunResult(now=now, end=end, kind="backfill")
            views = self.online_views()
            watermarks = {view.name: self.state.watermark(view.name) for view in views}
            # With newer values online, Redis keeps its newest-wins check for the
            # window even where skip_dedup is configured; then they are re-asserted.
            newer_online = [v for v in views if (w := watermarks[v.name]) and w > end]
            parts = self._materialize_views(
                [(v, start, end) for v in views if v not in newer_online], advance=False
            ) + self._materialize_views(
                [(v, start, end) for v in newer_online], advance=False, newest_wins=True
            )
            order = {view.name: index for index, view in enumerate(views)}
            result.views = sorted(parts, key=lambda part: order[part.view])
            newer = self._materialize_views(
                [
                    (v, end + ONE_MICROSECOND, cast(datetime, watermarks[v.name]))
                    for v in newer_online
                ],
                advance=False,
            )
            for part in newer:
                done = next(r for r in result.views if r.view == part.view)
                done.rows += part.rows
                done.seconds += part.seconds
            result.seconds = time.perf_counter() - started
            self.state.record_run(result.log_record(), status="ok")
            log.info("materialization backfill", extra=result.log_record())
            return result
        finally:
            lock.release()

    # -- pieces ----------------------------------------------------------------
    def online_watermark(self) -> tuple[str, datetime] | None:
        """The view materialized furthest, and its watermark (None: nothing materialized)."""
        marks = [(view.name, self.state.watermark(view.name)) for view in self.online_views()]
        known = [(name, mark) for name, mark in marks if mark is not None]
        return max(known, key=lambda pair: pair[1]) if known else None

    def _refuse_now_behind_watermark(self, now: datetime) -> None:
        """Materialization cannot be undone: a run "now" before the watermark would write
        nothing and record a run that never happened at that time."""
        ahead = self.online_watermark()
        if ahead is not None and now < ahead[1]:
            view, watermark = ahead
            raise NowBehindWatermark(
                f"now {now.isoformat()} is before the online store's watermark "
                f"{watermark.isoformat()} ({view}); a run cannot move the store back "
                "(`materialize --backfill START END` rewrites a past window)"
            )

    def _catch_up_features(self, now: datetime) -> datetime | None:
        """Ingest every event knowable by ``now`` and extend the feature tables to it."""
        from feature_repo.pipeline import feature_builder, ingest, raw_layer

        raw_through = raw_layer(self.settings).published_through()
        if raw_through is None or raw_through < now:
            ingest(self.settings, now)
            return now
        builder = feature_builder(self.settings)
        built = builder.published_through()
        if built is None or built < raw_through:
            builder.build()
        return None

    def _features_ready_until(self) -> datetime:
        from feature_repo.pipeline import feature_builder

        built = feature_builder(self.settings).published_through()
        if built is None:
            raise RuntimeError("no feature tables yet; run `python -m feature_repo ingest` first")
        return built

    def _materialize_views(
        self,
        windows: list[tuple[Any, datetime, datetime]],
        advance: bool,
        newest_wins: bool = False,
        finished: Callable[[list[ViewResult]], dict[str, Any]] | None = None,
    ) -> list[ViewResult]:
        """Each view's window ``[start, end]`` into the online store, in one engine call.

        A view's watermark moves only once its own write succeeded; if any failed,
        the others still move, and the first failure is raised afterwards. When every
        write succeeded, ``finished`` gives the run's record, stored with the watermarks.
        """
        results = [ViewResult(view.name, start, end) for view, start, end in windows]
        writes = []
        for (view, start, end), result in zip(windows, results, strict=True):
            files = _partition_files(self.settings.features_dir, view.name, start, end)
            if start <= end and files:
                writes.append((view, files, result))
        failures = self._write_through_feast(writes, newest_wins)
        if advance and writes and not wait_for_replicas(self.settings):
            # A master that dies now may take rows with it; the watermarks still move,
            # as a replica that is this far behind is itself the problem to page on.
            log.warning("cluster replicas lag behind their masters after the write")
        if advance:
            self.state.advance_many(
                [
                    (view.name, end, result.newest_event, result.rows)
                    for (view, start, end), result in zip(windows, results, strict=True)
                    if start <= end and view.name not in failures
                ],
                described={view.name: _promise(view) for view, _, _ in windows},
                last_run=finished(results) if finished is not None and not failures else None,
            )
        if failures:
            raise next(iter(failures.values()))
        return results

    def _write_through_feast(
        self, writes: list[tuple[Any, list[Path], ViewResult]], newest_wins: bool
    ) -> dict[str, BaseException]:
        """Feast's engine writes every window; fills in rows, newest event and seconds,
        and returns the failures by view."""
        from feast.infra.common.materialization_job import MaterializationJobStatus

        from feature_repo.feast_engine import WindowTask

        if not writes:
            return {}
        store = self.store
        tasks = [
            WindowTask(
                project=store.project,
                feature_view=view,
                start_time=cast(datetime, result.window_start),  # set for every write
                end_time=cast(datetime, result.window_end),
                tqdm_builder=lambda length: _NoProgress(),
                source_files=[str(f) for f in files],
                newest_wins=newest_wins,
            )
            for view, files, result in writes
        ]
        markers = [self._in_flight_path(view.name) for view, _, _ in writes]
        for marker, (_, _, result) in zip(markers, writes, strict=True):
            window = f"{_iso(result.window_start)} {_iso(result.window_end)}"
            marker.write_text(f"{window} pid={os.getpid()}\n")
        failures: dict[str, BaseException] = {}
        try:
            started = time.perf_counter()
            jobs = provider(store).batch_engine.materialize(store.registry, tasks)
            took = time.perf_counter() - started
            for job, (view, files, result) in zip(jobs, writes, strict=True):
                if job.status() == MaterializationJobStatus.ERROR:
                    failures[view.name] = self._named(job.error() or RuntimeError(job.job_id))
                elif hasattr(job, "rows"):  # feature_repo.feast_engine reports what it wrote
                    result.rows, result.newest_event = job.rows, job.newest_event
                    result.seconds = job.seconds
                else:  # another engine: count the window
                    keys = [e.name for e in view.entity_columns]
                    assert result.window_start and result.window_end
                    result.rows, result.newest_event = _window_stats(
                        files, keys, result.window_start, result.window_end
                    )
                    result.seconds = took / len(writes)
        except Exception as err:
            if (named := self._named(err)) is err:
                raise
            raise named from None
        finally:
            for marker in markers:
                marker.unlink(missing_ok=True)
        return failures

    def _named(self, err: BaseException) -> BaseException:
        if _is_connection_error(err):
            return OnlineStoreUnavailable(f"cannot reach Redis at {self.settings.redis_url}: {err}")
        return err

    def _forget_watermarks_if_store_was_reset(self) -> None:
        """A Redis that restarted without persistence comes back empty; so does a
        deleted SQLite file. Watermarks describe the store's content, so they go too,
        and this run rebuilds the store instead of writing only the newest window."""
        marker = OnlineStoreMarker(self.settings)
        expected = self.state.marker()
        if expected and marker.read() == expected:
            return
        if self.state.views():
            log.warning(
                "online store was reset; rematerializing",
                extra={"store": self.settings.online_store_kind},
            )
        self.state.reset()
        self._ensure_online_tables()
        self.state.set_marker(marker.create())

    def _ensure_online_tables(self) -> None:
        """Recreate what ``feast apply`` sets up in the online store (SQLite tables)."""
        store = self.store
        provider(store).update_infra(
            project=store.project,
            tables_to_delete=[],
            tables_to_keep=self.online_views(),
            entities_to_delete=[],
            entities_to_keep=store.list_entities(),
            partial=True,
        )

    def _clear_scratch(self) -> None:
        """Remove what killed runs left in the scratch folder: this job's in-flight
        markers, and other jobs' folders (training-set builds) whose owner is dead."""
        scratch = self.settings.state_dir / "scratch"
        if not scratch.exists():
            return
        sweep_scratch(scratch)  # a live build's folder is locked by its owner: kept
        # We hold the lock, so no write of ours is live.
        leftovers = list(scratch.glob(f"{IN_FLIGHT_PREFIX}*"))
        unfinished = sorted(p.name.removeprefix(IN_FLIGHT_PREFIX) for p in leftovers)
        if unfinished:
            log.warning("a killed run left writes unfinished; redoing", extra={"views": unfinished})
        for path in leftovers:
            path.unlink(missing_ok=True)

    def _in_flight_path(self, view: str) -> Path:
        """Exists while ``view``'s window is being written (names the write a killed run
        left unfinished; its watermark did not move, so the next run redoes it)."""
        path = self.settings.state_dir / "scratch" / f"{IN_FLIGHT_PREFIX}{view}"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def _promise(view: Any) -> dict[str, Any]:
    """What a view promises about freshness (``feature_repo.freshness``)."""
    return {
        "ttl_seconds": view.ttl.total_seconds() if view.ttl else 0,
        "freshness": (view.tags or {}).get("freshness"),
    }


def _iso(instant: datetime | None) -> str:
    return instant.isoformat() if instant else "?"


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _is_connection_error(err: BaseException) -> bool:
    from feature_repo.redis_clients import is_outage

    return is_outage(err)


def status_rows(settings: Settings) -> list[dict[str, Any]]:
    """Per feature view: watermark, last run's rows, freshness against "now" and its
    objective (``feature_repo.freshness``), next run."""
    from feature_repo.freshness import assess, schedule_period

    state = MaterializationState(settings)
    now = Clock(settings).now().instant
    schedule = state.schedule()
    period = schedule_period(state, settings.schedule_period)
    views = state.views()
    rows = []
    for fresh in assess(state, now, period):
        view = views[fresh.view]
        rows.append(
            {
                "view": fresh.view,
                "watermark": view.get("watermark"),
                "last_run": view.get("last_run_at"),
                "rows": view.get("last_rows", 0),
                "newest_event": view.get("newest_event"),
                "freshness_seconds": fresh.age_seconds,
                **fresh.as_dict(),
                "schedule_period_seconds": period.total_seconds(),
                "next_run": schedule.get("next_run"),
            }
        )
    return rows
