"""A bounded hand-off from the request path to one background writer thread.

``log()`` only appends a reference to the caller's rows to a queue under a lock:
no conversion, no I/O, nothing that can block on the writer. When the queue
holds ``max_queue`` rows, new rows are dropped and counted instead, so a slow
disk or a burst of traffic costs observability, never latency or a failed request.
The thread drains the queue in batches because whylogs (and Parquet) cost far
less per row in bulk.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import pandas as pd

from monitoring.intervals import utc_now

log = logging.getLogger(__name__)

Rows: TypeAlias = pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any]


@dataclass(frozen=True)
class Batch:
    """Rows handed to the writer, each call's rows stamped with when they arrived."""

    parts: list[tuple[pd.DataFrame | Sequence[Mapping[str, Any]], datetime]]
    rows: int


@dataclass(frozen=True)
class SinkStats:
    """Counters for a Prometheus exporter: all monotonic except ``queued_rows``.

    ``rows_logged`` were accepted by ``log()``, ``rows_dropped`` were refused (queue
    full or closed), ``rows_processed`` reached the writer's state, ``rows_failed``
    could not be processed.
    """

    rows_logged: int
    rows_dropped: int
    rows_processed: int
    rows_failed: int
    files_written: int
    errors: int
    queued_rows: int


class BackgroundSink(ABC):
    """Queue plus worker thread; subclasses say how a batch is absorbed and persisted."""

    def __init__(
        self,
        *,
        name: str,
        clock: Callable[[], datetime] = utc_now,
        max_queue: int = 100_000,
        batch_size: int = 1_000,
        max_wait_seconds: float = 1.0,
        checkpoint_seconds: float = 60.0,
    ) -> None:
        if max_queue < 1 or batch_size < 1:
            raise ValueError("max_queue and batch_size must be at least 1")
        self._clock = clock
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._max_wait = max_wait_seconds
        self._checkpoint_every = checkpoint_seconds
        self._queue: deque[tuple[Any, int, datetime]] = deque()
        self._cond = threading.Condition()
        self._queued = 0
        self._closing = False
        self._flush_waiters: list[threading.Event] = []
        self._rows_logged = 0
        self._rows_dropped = 0
        self._rows_processed = 0
        self._rows_failed = 0
        self._files_written = 0
        self._errors = 0
        self._last_checkpoint = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        # A daemon thread dies with the interpreter; closing at exit keeps the
        # open interval of a process that forgot close().
        atexit.register(self.close)

    # -- the hot path ------------------------------------------------------
    def log(self, rows: Rows) -> bool:
        """Queue rows for the writer. Never raises, never blocks on I/O.

        Returns False when the rows were dropped (queue full, or closed). The
        rows are not copied: do not mutate a DataFrame after handing it over.
        """
        try:
            if isinstance(rows, Mapping):
                rows = [rows]
            count = len(rows)
            if count == 0:
                return True
            received = self._clock()
            with self._cond:
                if self._closing or self._queued + count > self._max_queue:
                    self._rows_dropped += count
                    return False
                self._queue.append((rows, count, received))
                self._queued += count
                self._rows_logged += count
                if self._queued >= self._batch_size:
                    self._cond.notify()
            return True
        except Exception:
            # Logging must never fail a request; the error counter tells the story.
            with self._cond:
                self._errors += 1
            return False

    # -- control -----------------------------------------------------------
    @property
    def stats(self) -> SinkStats:
        with self._cond:
            return SinkStats(
                rows_logged=self._rows_logged,
                rows_dropped=self._rows_dropped,
                rows_processed=self._rows_processed,
                rows_failed=self._rows_failed,
                files_written=self._files_written,
                errors=self._errors,
                queued_rows=self._queued,
            )

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Absorb everything queued so far and persist it now. True when done in time."""
        done = threading.Event()
        with self._cond:
            if not self._thread.is_alive():
                return False
            self._flush_waiters.append(done)
            self._cond.notify()
        return done.wait(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop taking rows, absorb the queue, persist open state, stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("monitoring writer still busy after close()", extra={"wait": timeout})
        atexit.unregister(self.close)

    def __enter__(self) -> BackgroundSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- subclass hooks ----------------------------------------------------
    @abstractmethod
    def _absorb(self, batch: Batch) -> None:
        """Take a batch into in-memory state (profile it, buffer it)."""

    @abstractmethod
    def _persist(self, final: bool) -> None:
        """Write what is open; ``final`` on flush and close."""

    def _tick(self) -> None:  # noqa: B027  (optional hook)
        """Called on every wake-up, e.g. to close intervals on the clock."""

    def _count_done(self, rows: int = 0, files: int = 0) -> None:
        with self._cond:
            self._rows_processed += rows
            self._files_written += files

    def _count_error(self, rows_failed: int = 0) -> None:
        with self._cond:
            self._errors += 1
            self._rows_failed += rows_failed

    # -- the worker --------------------------------------------------------
    def _take(self) -> tuple[Batch | None, bool, list[threading.Event]]:
        """Wait for a batch's worth of rows (or a deadline, flush, close); take them all."""
        with self._cond:
            if self._queued < self._batch_size and not self._closing and not self._flush_waiters:
                self._cond.wait(self._max_wait)
            # Everything waiting goes in one batch: whylogs costs per call more than per row.
            parts = [(item, received) for item, _, received in self._queue]
            rows = self._queued
            self._queue.clear()
            self._queued = 0
            # The queue is empty now, so pending flushes (and a close) can complete.
            waiters, self._flush_waiters = self._flush_waiters, []
            return (Batch(parts, rows) if parts else None), self._closing, waiters

    def _run(self) -> None:
        while True:
            batch, stop, waiters = self._take()
            if batch is not None:
                try:
                    self._absorb(batch)
                except Exception:
                    log.exception(
                        "monitoring writer could not absorb a batch", extra={"rows": batch.rows}
                    )
                    self._count_error(rows_failed=batch.rows)
            final = stop or bool(waiters)
            due = time.monotonic() - self._last_checkpoint >= self._checkpoint_every
            try:
                self._tick()
                if final or due:
                    self._persist(final)
                    self._last_checkpoint = time.monotonic()
            except Exception:
                log.exception("monitoring writer could not persist")
                self._count_error()
            for waiter in waiters:
                waiter.set()
            if stop:
                return
