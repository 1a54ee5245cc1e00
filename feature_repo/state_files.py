"""Small JSON state for materialization: per-view watermarks, the last run, the schedule.

The state is kept per online store (SQLite file or Redis URL), because a
watermark only describes the store it was written to. Only the process that
holds the materialization lock writes the watermarks, and every write is atomic.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feature_repo.atomic_io import write_json
from feature_repo.settings import Settings


def _store_identity(settings: Settings) -> str:
    if settings.redis_url:
        return "redis-" + hashlib.sha1(settings.redis_url.encode()).hexdigest()[:10]
    return "sqlite"


class MaterializationState:
    def __init__(self, settings: Settings) -> None:
        self.path: Path = settings.state_dir / f"materialization-{_store_identity(settings)}.json"
        self.schedule_path: Path = settings.state_dir / "schedule.json"

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"views": {}}
        return json.loads(self.path.read_text())

    def views(self) -> dict[str, dict[str, Any]]:
        return self._load()["views"]

    def watermark(self, view: str) -> datetime | None:
        value = self.views().get(view, {}).get("watermark")
        return datetime.fromisoformat(value) if value else None

    def advance_many(
        self,
        moves: list[tuple[str, datetime, datetime | None, int]],
        described: dict[str, dict[str, Any]] | None = None,
        last_run: dict[str, Any] | None = None,
    ) -> None:
        """Move several views' watermarks in one atomic write; ``described`` adds what
        each view promises (its TTL and freshness tag) for ``status`` and the service;
        ``last_run``, the record of the run that moved them, as :meth:`record_run` with
        status ``ok`` (one write a step rather than two: each is a sync to disk)."""
        if not moves and last_run is None:
            return
        state = self._load()
        if last_run is not None:
            state["last_run"] = _finished(last_run, "ok")
        finished = datetime.now(UTC).isoformat()
        for view, watermark, newest_event, rows in moves:
            entry = state["views"].setdefault(view, {})
            entry.update((described or {}).get(view, {}))
            entry["watermark"] = watermark.isoformat()
            if newest_event is not None:
                entry["newest_event"] = newest_event.isoformat()
            entry["last_rows"] = rows
            entry["last_run_at"] = finished
        write_json(state, self.path)

    def record_run(self, record: dict[str, Any], status: str) -> None:
        state = self._load()
        state["last_run"] = _finished(record, status)
        write_json(state, self.path)

    def last_run(self) -> dict[str, Any] | None:
        return self._load().get("last_run")

    def schedule(self) -> dict[str, Any]:
        if not self.schedule_path.exists():
            return {}
        return json.loads(self.schedule_path.read_text())

    def record_schedule(
        self,
        trigger: str,
        next_run: datetime | None,
        pid: int,
        period: timedelta | None = None,
    ) -> None:
        payload = {
            "trigger": trigger,
            "pid": pid,
            "next_run": next_run.isoformat() if next_run else None,
            "period_seconds": period.total_seconds() if period else None,
        }
        write_json(payload, self.schedule_path)

    def marker(self) -> str | None:
        return self._load().get("store_marker")

    def set_marker(self, token: str) -> None:
        state = self._load()
        state["store_marker"] = token
        write_json(state, self.path)

    def reset(self) -> None:
        """Forget every watermark (the store was emptied)."""
        state = self._load()
        write_json({"views": {}, "last_run": state.get("last_run")}, self.path)


def _finished(record: dict[str, Any], status: str) -> dict[str, Any]:
    return dict(record, status=status, finished_at=datetime.now(UTC).isoformat())
