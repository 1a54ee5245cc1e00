"""The pipeline's step on a schedule (APScheduler), and replays against the simulated clock.

Every run is ``Materializer.run(now)``: ingest what is knowable by "now", build the
features to it, materialize to it. The wall-clock scheduler takes "now" from the
clock, a replay from its ticks.

- Missed runs are coalesced into one, and a run never overlaps another: in this
  process (``max_instances=1``) and across processes (the run lock).
- SIGTERM or SIGINT stops the scheduler after the run in flight has finished;
  a run cut short by SIGKILL is redone by the next, because watermarks only
  move after a successful write.
- Feast is imported once, in-process; no ``feast`` CLI per run.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from feature_repo.clock import Clock
from feature_repo.materialize import Materializer, RunResult, RunSkipped
from feature_repo.run_lock import OnlineStoreUnavailable
from feature_repo.settings import Settings
from feature_repo.state_files import MaterializationState

log = logging.getLogger(__name__)


def replay_instants(start: datetime, end: datetime, tick: timedelta) -> Iterator[datetime]:
    """``start + tick``, ``start + 2 tick``, ... until the tick that begins at ``end``.

    Each instant is the *end* of a tick, so ``--start 2013-06-01 --end 2013-06-30
    --tick 1d`` moves the clock to the end of June 1st first and to the end of
    June 30th last: every day in the range is replayed, complete.
    """
    if tick <= timedelta(0):
        raise ValueError("--tick must be positive")
    if end < start:
        raise ValueError(f"--end {end:%Y-%m-%d} is before --start {start:%Y-%m-%d}")
    now = start + tick
    while now - tick <= end:
        yield now
        now += tick


def replay(
    settings: Settings,
    start: datetime,
    end: datetime,
    tick: timedelta,
    on_run: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Advance the simulated clock tick by tick, running the step at each, as fast as possible."""
    clock = Clock(settings)
    materializer = Materializer(settings)
    materializer.online_views()  # fails with advice when apply never ran
    results: list[RunResult] = []
    for now in replay_instants(start, end, tick):
        # The run first: a replay that starts behind the online store's watermark is
        # refused by its first run, before the clock or the schedule record moves.
        result = materializer.run(now=now, wait_seconds=60)
        clock.set(now)
        if not results:
            MaterializationState(settings).record_schedule(
                f"replay every {tick}", None, os.getpid(), tick
            )
        results.append(result)
        if on_run:
            on_run(result)
    return results


class MaterializationScheduler:
    def __init__(
        self,
        settings: Settings,
        trigger: Any,
        description: str,
        period: timedelta | None = None,
    ) -> None:
        from apscheduler.schedulers.blocking import BlockingScheduler

        self.settings = settings
        self.description = description
        self.period = period
        self.materializer = Materializer(settings)
        self.materializer.online_views()  # refuse to start, with advice, before apply
        self.state = MaterializationState(settings)
        self.scheduler = BlockingScheduler(timezone="UTC")
        self.scheduler.add_job(
            self._run_once,
            trigger=trigger,
            id="materialize",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
            next_run_time=datetime.now(trigger.timezone),
        )
        self._stopping = threading.Event()
        # Held for the whole of a run and its bookkeeping (see ``_stop``).
        self._run_lock = threading.Lock()

    @classmethod
    def every(cls, settings: Settings, interval: timedelta) -> MaterializationScheduler:
        from apscheduler.triggers.interval import IntervalTrigger

        return cls(
            settings,
            IntervalTrigger(seconds=interval.total_seconds(), timezone="UTC"),
            f"every {interval}",
            interval,
        )

    @classmethod
    def cron(cls, settings: Settings, expression: str) -> MaterializationScheduler:
        from apscheduler.triggers.cron import CronTrigger

        try:
            trigger = CronTrigger.from_crontab(expression, timezone="UTC")
        except ValueError as err:
            raise ValueError(f"--cron {expression!r}: {err}") from None
        return cls(settings, trigger, f"cron {expression}")

    def _run_once(self) -> None:
        with self._run_lock:
            if self._stopping.is_set():  # submitted just before the stop: nothing to finish
                return
            self._run_and_record()

    def _run_and_record(self) -> None:
        try:
            result = self.materializer.run()
            log.info(
                "scheduled run done",
                extra={"rows": result.rows, "seconds": round(result.seconds, 3)},
            )
        except RunSkipped as err:
            log.warning("scheduled run skipped", extra={"reason": str(err)})
        except OnlineStoreUnavailable as err:
            log.error("scheduled run failed", extra={"reason": str(err)})
            self.state.record_run({"error": str(err)}, status="failed")
        except Exception as err:  # a scheduler must outlive one bad run
            log.exception("scheduled run failed", extra={"reason": str(err)})
            self.state.record_run({"error": str(err)}, status="failed")
        finally:
            self._record_next_run()

    def _record_next_run(self) -> None:
        job = self.scheduler.get_job("materialize")
        next_run = job.next_run_time if job else None
        self.state.record_schedule(self.description, next_run, os.getpid(), self.period)

    def _stop(self, signum: int, _frame: object) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        log.info("stopping scheduler after the run in flight", extra={"signal": signum})
        threading.Thread(target=self._finish_and_shut_down).start()

    def _finish_and_shut_down(self) -> None:
        # The run in flight finishes (and records its watermark and next run) first.
        # APScheduler's shutdown(wait=True) joins the job's thread while it holds the job
        # store lock, which the job's own get_job() takes to record the next run: a stop
        # signal between the two deadlocked. Once this lock is ours, any later run
        # returns at once (``_stopping`` is set), so the join cannot wait on a lock.
        with self._run_lock:
            pass
        self.scheduler.shutdown(wait=True)

    def start(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        log.info("scheduler started", extra={"trigger": self.description})
        self.scheduler.start()
        log.info("scheduler stopped")
