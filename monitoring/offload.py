"""Monitoring writers in a child process, so their CPU never holds the service's GIL.

whylogs spends about 1 ms of Python per column per call (30 ms for a served
row of 32 columns, 0.13 ms a row in batches of 1,000). In a serving process
that CPU holds the GIL: a request that arrives while a batch is profiled waits
for it, and the p99 shows it. So the service keeps only a bounded queue and a
thread that pickles what was queued (about 0.01 ms a row) down a pipe; a child
process, started with a lower CPU priority, does the profiling and the writing.

Parent side: :class:`OffloadedSink`, a ``BackgroundSink`` whose batches go to
the child. Child side: :func:`run_child` reads them and hands them to a
handler (``log``, ``flush``, ``close``, ``stats``). The protocol is
length-prefixed pickles: ``("rows", parts)``, ``("flush", id)`` and
``("close", id)`` down; ``("ack", id, stats)`` up.

A clean shutdown loses nothing: ``close()`` drains the queue, sends it, and
waits for the child to write its files and acknowledge. The child runs in its
own session, so the SIGTERM a supervisor sends to the service's process group
does not stop it before the parent has flushed; if the parent dies, the child
sees the pipe close, writes what it has and exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import IO, Any, Protocol

from monitoring.background import BackgroundSink, Batch

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!I")
CHILD_NICE = 10


class ChildHandler(Protocol):
    def log(self, rows: Any) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


def write_frame(stream: IO[bytes], message: object) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any | None:
    """The next message, or None when the other side closed the pipe."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        return None
    return pickle.loads(payload)


class OffloadedSink(BackgroundSink):
    """Queues rows here; ``command`` starts the child that absorbs them (see run_child)."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        name: str = "monitoring-offload",
        env: Mapping[str, str] | None = None,
        max_queue: int = 100_000,
        batch_size: int = 1_000,
        max_wait_seconds: float = 1.0,
        ack_timeout: float = 60.0,
    ) -> None:
        self._ack_timeout = ack_timeout
        self._acks: dict[int, threading.Event] = {}
        self._ack_ids = iter(range(1, 1 << 62))
        self._write_lock = threading.Lock()
        self._child_stats: dict[str, Any] = {}
        self._broken = False
        self._child = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            # Not in the service's process group: a group-wide SIGTERM must not
            # kill the writer before the service has handed it the last rows.
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_acks, name=f"{name}-acks", daemon=True)
        self._reader.start()
        super().__init__(
            name=name,
            max_queue=max_queue,
            batch_size=batch_size,
            max_wait_seconds=max_wait_seconds,
            checkpoint_seconds=float("inf"),  # the child checkpoints its own files
        )

    @property
    def child_stats(self) -> dict[str, Any]:
        """What the child reported at its last acknowledgement (rows, files, drops)."""
        return dict(self._child_stats)

    @property
    def pid(self) -> int:
        return self._child.pid

    def _send(self, message: object) -> bool:
        if self._broken:
            return False
        assert self._child.stdin is not None
        try:
            with self._write_lock:
                write_frame(self._child.stdin, message)
            return True
        except (OSError, ValueError):
            # A dead child: say so once, then count what cannot be delivered as failed.
            self._broken = True
            log.error(
                "monitoring writer process is gone",
                extra={"pid": self._child.pid, "exit_code": self._child.poll()},
            )
            return False

    def _absorb(self, batch: Batch) -> None:
        if self._send(("rows", batch.parts)):
            self._count_done(rows=batch.rows)
        else:
            self._count_error(rows_failed=batch.rows)

    def _request(self, kind: str) -> bool:
        """Send ``kind`` and wait for the child's acknowledgement."""
        ack = next(self._ack_ids)
        done = threading.Event()
        self._acks[ack] = done
        try:
            if not self._send((kind, ack)):
                return False
            if not done.wait(self._ack_timeout):
                log.warning("monitoring writer process did not acknowledge", extra={"kind": kind})
                return False
            return True
        finally:
            self._acks.pop(ack, None)

    def _persist(self, final: bool) -> None:
        if final:
            self._request("flush")

    def _read_acks(self) -> None:
        assert self._child.stdout is not None
        while True:
            try:
                message = read_frame(self._child.stdout)
            except Exception:  # a garbled frame: the child is broken, stop listening
                log.exception("unreadable message from the monitoring writer process")
                return
            if message is None:
                return
            if message[0] == "ack":
                _, ack, stats = message
                self._child_stats = stats
                waiter = self._acks.get(ack)
                if waiter is not None:
                    waiter.set()

    def close(self, timeout: float | None = 30.0) -> None:
        """Drain the queue into the child, let it write and exit."""
        super().close(timeout)
        if self._child.poll() is None:
            self._request("close")
            with contextlib.suppress(OSError):  # already closed by a dead child
                if self._child.stdin is not None:
                    self._child.stdin.close()
            try:
                self._child.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("monitoring writer process killed after close()")
                self._child.kill()
                self._child.wait(10)
        self._reader.join(5)


def run_child(handler: ChildHandler) -> int:
    """The child's loop: absorb rows until the parent says close or goes away."""
    # The protocol owns the real stdout; stray prints from libraries go to stderr.
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(OSError):  # a container may forbid it; then run at par
        os.nice(CHILD_NICE)
    source = sys.stdin.buffer
    while True:
        message = read_frame(source)
        if message is None:
            # The parent is gone without a goodbye: keep what arrived.
            handler.close()
            return 0
        kind = message[0]
        if kind == "rows":
            for rows, _received in message[1]:
                handler.log(rows)
        elif kind == "flush":
            handler.flush()
            write_frame(protocol, ("ack", message[1], handler.stats()))
        elif kind == "close":
            handler.close()
            write_frame(protocol, ("ack", message[1], handler.stats()))
            return 0
        else:
            log.error("unknown message from the service", extra={"kind": str(kind)})
