"""The rollout of a challenger: which model runs beside the champion, and how.

``<bentoml_home>/rollout.json`` holds at most one challenger:

- ``mode: "shadow"``: every request is scored by the champion and the
  challenger; the champion answers.
- ``mode: "canary"``: ``percent`` of flights, chosen by a hash of the flight's
  identity (:func:`canary_bucket`), are answered by the challenger; all
  flights are still scored by both, so the evidence stays paired.

``until`` (optional, an ISO instant on the system clock) ends the rollout by
itself: after a live promotion the previous champion stays in shadow for a
watch period. Training writes the file (``python -m training models rollout``),
always whole (temp file + rename); serving and monitoring only read it, so they
need not import ``training``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from feature_repo.atomic_io import write_json
from feature_repo.settings import Settings

SHADOW, CANARY = "shadow", "canary"
MODES = (SHADOW, CANARY)
# Roles of a logged probability: the champion's own, or the challenger's in either mode.
ROLE_CHAMPION = "champion"
ROLES = (ROLE_CHAMPION, SHADOW, CANARY)
ROLLOUT_FILE = "rollout.json"


class RolloutFileError(ValueError):
    """``rollout.json`` exists but cannot be read as a rollout; the message says why."""


@dataclass(frozen=True)
class Rollout:
    challenger: str
    mode: str
    percent: float = 0.0
    started_at: str = ""
    until: str | None = None  # the rollout ends by itself at this instant
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise RolloutFileError(f"rollout mode must be one of {MODES}, got {self.mode!r}")
        if not 0 <= self.percent <= 100:
            raise RolloutFileError(f"canary percent must be within 0..100, got {self.percent}")

    @property
    def role(self) -> str:
        """The role the challenger's probabilities are logged with."""
        return self.mode

    def active_at(self, instant: datetime) -> bool:
        return self.until is None or instant < datetime.fromisoformat(self.until)

    def describe(self) -> str:
        kind = f"canary {self.percent:g}%" if self.mode == CANARY else "shadow"
        return kind + (f" until {self.until}" if self.until else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rollout_path(settings: Settings) -> Path:
    return settings.bentoml_home / ROLLOUT_FILE


def read_rollout(settings: Settings) -> Rollout | None:
    """The rollout in force (None when there is none), re-read only when the file changed."""
    path = rollout_path(settings)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RolloutFileError(f"{path} is not valid JSON: {err}") from None
    rollout = None
    if document.get("challenger"):
        try:
            rollout = Rollout(**document)
        except TypeError as err:
            raise RolloutFileError(f"{path}: {err}") from None
    _cache[path] = (stamp, rollout)
    return rollout


_cache: dict[Path, tuple[tuple[int, int, int], Rollout | None]] = {}


def write_rollout(settings: Settings, rollout: Rollout | None) -> None:
    """Replace the rollout (None ends it); written whole, so a reader sees old or new."""
    write_json(rollout.to_dict() if rollout else {"challenger": None}, rollout_path(settings))


def canary_bucket(flight_key: str) -> float:
    """A flight's place in [0, 100): the same on every worker, process and restart.

    SHA-256, not ``hash()``, which Python salts per process.
    """
    digest = hashlib.sha256(flight_key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def answered_by_challenger(flight_key: str, percent: float) -> bool:
    return canary_bucket(flight_key) < percent
