"""Which flights a canary challenger answers: a hash of the flight's identity.

The identity is the caller's ``flight_id`` when it sends one, else the flight's
own fields (carrier, route, scheduled departure, aircraft, distance). The hash
(``model_registry.rollout.canary_bucket``) is SHA-256, so a flight gets the
same model on every worker and after every restart, and a retried request is
answered by the model that answered it first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from model_registry.rollout import CANARY, Rollout, answered_by_challenger


def flight_key(flight: Any) -> str:
    flight_id = getattr(flight, "flight_id", None)
    if flight_id:
        return f"id:{flight_id}"
    return "fields:" + flight.model_dump_json(exclude={"flight_id"})


def canary_rows(flights: Sequence[Any], rollout: Rollout) -> list[int]:
    """Indices of the flights the challenger answers (none in shadow)."""
    if rollout.mode != CANARY or rollout.percent <= 0:
        return []
    percent = rollout.percent
    return [i for i, f in enumerate(flights) if answered_by_challenger(flight_key(f), percent)]
