"""One deadline for a request's whole online read, however many round trips it makes.

The socket timeout (2 s) bounds one Redis command, but Feast reads each feature
view with its own pipeline and redis-py retries a timed-out one: against a
paused Redis (connections accepted, never answered) a request waited 6 views x
3 attempts x 2 s, 38 s in all. The read runs on a small pool of threads and
the request waits for it at most ``seconds``; then it fails as an outage (503).
A read still blocked on its socket finishes in the background on its own
timeouts; while ``max_in_flight`` of them are, new requests fail at once rather
than queueing behind them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from feature_repo.run_lock import OnlineStoreUnavailable

T = TypeVar("T")


class Deadline:
    def __init__(self, seconds: float, max_in_flight: int = 8) -> None:
        self.seconds = seconds
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="online-read")
        self._slots = threading.BoundedSemaphore(max_in_flight)

    def run(self, read: Callable[[], T]) -> T:
        if not self._slots.acquire(blocking=False):
            raise OnlineStoreUnavailable(
                "the online store has not answered earlier reads yet; failing fast"
            )
        future = self._pool.submit(read)
        future.add_done_callback(lambda _: self._slots.release())
        try:
            return future.result(timeout=self.seconds)
        except FutureTimeout:
            raise OnlineStoreUnavailable(
                f"no answer from the online store within {self.seconds:g}s"
            ) from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
