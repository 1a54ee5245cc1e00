"""One materialization at a time, across processes.

With Redis as the online store the lock lives in Redis, so that schedulers on
different machines writing to the same store exclude each other. It expires
quickly and a heartbeat keeps it alive while the run lasts, so a process that
is killed outright blocks others only for a few seconds. With the embedded
SQLite store a file lock is enough, and the OS releases it when its holder dies.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, cast

from filelock import FileLock, Timeout

from feature_repo.settings import Settings


class OnlineStoreUnavailable(RuntimeError):
    """The online store cannot be reached; nothing was written."""


def holder_description() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(),
    }


class RunLock(Protocol):
    def acquire(self, wait_seconds: float) -> bool: ...
    def release(self) -> None: ...
    def holder(self) -> str: ...


class FileRunLock:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(path))
        self._holder_path = path.with_suffix(".holder.json")

    def acquire(self, wait_seconds: float) -> bool:
        try:
            self._lock.acquire(timeout=wait_seconds)
        except Timeout:
            return False
        self._holder_path.write_text(json.dumps(holder_description()))
        return True

    def release(self) -> None:
        self._lock.release()

    def holder(self) -> str:
        try:
            return self._holder_path.read_text()
        except OSError:
            return "unknown"


class RedisRunLock:
    KEY = "feastline:materialize:lock"
    LEASE_SECONDS = 10

    def __init__(self, settings: Settings) -> None:
        from feature_repo.redis_clients import open_redis

        self._client = open_redis(settings)
        self._where = settings.redis_url
        self._lock = self._client.lock(self.KEY, timeout=self.LEASE_SECONDS, thread_local=False)
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self, wait_seconds: float) -> bool:
        import redis

        from feature_repo.redis_clients import is_outage

        try:
            acquired = self._lock.acquire(
                blocking=wait_seconds > 0, blocking_timeout=wait_seconds or None
            )
            if acquired:
                self._client.set(
                    f"{self.KEY}:holder", json.dumps(holder_description()), ex=self.LEASE_SECONDS
                )
        except redis.exceptions.RedisError as err:
            if not is_outage(err):
                raise
            raise OnlineStoreUnavailable(f"cannot reach Redis at {self._where}: {err}") from None
        if acquired:
            self._stop.clear()
            self._heartbeat = threading.Thread(
                target=self._renew, daemon=True, name="materialize-lock-heartbeat"
            )
            self._heartbeat.start()
        return bool(acquired)

    def _renew(self) -> None:
        import redis

        while not self._stop.wait(self.LEASE_SECONDS / 3):
            try:
                self._lock.extend(self.LEASE_SECONDS, replace_ttl=True)
                self._client.expire(f"{self.KEY}:holder", self.LEASE_SECONDS)
            except (redis.exceptions.RedisError, redis.exceptions.LockError):
                return  # the run itself will fail on the same outage

    def release(self) -> None:
        import redis

        self._stop.set()
        if self._heartbeat:
            self._heartbeat.join(timeout=2)
        try:
            self._lock.release()
            self._client.delete(f"{self.KEY}:holder")
        except (redis.exceptions.RedisError, redis.exceptions.LockError):
            pass  # expired or unreachable: the lease lapses on its own

    def holder(self) -> str:
        import redis

        try:
            value = cast(bytes | None, self._client.get(f"{self.KEY}:holder"))
        except redis.exceptions.RedisError:
            return "unknown"
        return value.decode() if value else "unknown"


def run_lock(settings: Settings) -> RunLock:
    if settings.redis_url:
        return RedisRunLock(settings)
    return FileRunLock(settings.state_dir / "materialize.lock")
