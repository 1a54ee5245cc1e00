"""The controller's own state: ``<data>/state/lifecycle.json``, always written whole.

The registry and ``rollout.json`` are the truth about models; this file only
holds what they cannot say: the last instant a tick completed, the last day
decisions were taken, when the last challenger was trained, and the step in
flight (an *intent*, written before the step and cleared after it), so that a
tick killed halfway is finished by the next one instead of repeated.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from feature_repo.atomic_io import write_json
from feature_repo.settings import Settings

STATE_FILE = "lifecycle.json"


class StateFileError(ValueError):
    """``lifecycle.json`` exists but cannot be read; the message names it."""


@dataclass
class Intent:
    """A step that was started: ``train`` (then ``run_id`` names the model it makes) or
    ``rollout`` (``tag`` is the challenger to put in shadow)."""

    action: str
    now: str
    run_id: str
    trigger: str
    tag: str | None = None


@dataclass
class LifecycleState:
    last_tick: str | None = None
    last_check_day: str | None = None
    last_retrain: str | None = None  # the instant the last challenger was trained at
    intent: Intent | None = None
    counterfactuals: dict[str, str] = field(default_factory=dict)  # arm -> model tag

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def state_path(settings: Settings) -> Path:
    return settings.state_dir / STATE_FILE


def read_state(settings: Settings) -> LifecycleState:
    path = state_path(settings)
    if not path.exists():
        return LifecycleState()
    try:
        document = json.loads(path.read_text())
        intent = document.pop("intent", None)
        return LifecycleState(**document, intent=Intent(**intent) if intent else None)
    except (OSError, json.JSONDecodeError, TypeError) as err:
        raise StateFileError(
            f"{path} is unreadable ({err}); move it aside to start the loop afresh"
        ) from None


def write_state(settings: Settings, state: LifecycleState) -> None:
    write_json(state.to_dict(), state_path(settings))


def iso(instant: datetime) -> str:
    return instant.isoformat()
