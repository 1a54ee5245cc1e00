"""Alert sinks: a log line, a JSON-lines file, a webhook.

An alert is one JSON object: its ``kind`` (drift, performance, skew), the
model tag, the window, what moved (drifted features with their scores,
degraded metrics, mismatched features) and why the policy failed. Each sink is tried on its
own; one failing (a webhook that is down) neither hides the others nor raises.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

if TYPE_CHECKING:
    from monitoring.drift import DriftResult

log = logging.getLogger(__name__)


class AlertError(RuntimeError):
    """A sink could not deliver an alert."""


class AlertSink(Protocol):
    @property
    def name(self) -> str: ...

    def send(self, alert: dict[str, Any]) -> None: ...


def build_alert(
    result: DriftResult,
    *,
    model_tag: str | None,
    reference: str,
    targets: Sequence[str],
    report: str | None = None,
) -> dict[str, Any]:
    start, end = result.target_window
    return {
        "kind": "drift",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_tag": model_tag,
        "window": {
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
        },
        "failed": result.failed,
        "reasons": result.reasons,
        "drift_share": round(result.drift_share, 6),
        "weighted_drift_share": (
            None if result.weighted_share is None else round(result.weighted_share, 6)
        ),
        "window_days": result.window_days,
        "calibrated_days": result.calibrated_days,
        "drifted": [
            {
                "column": c.column,
                "kind": c.kind,
                "psi": None if c.psi is None else round(c.psi, 6),
                "js": None if c.js is None else round(c.js, 6),
                "whylogs_algorithm": c.whylogs.algorithm if c.whylogs else None,
                "whylogs_pvalue": c.whylogs.pvalue if c.whylogs else None,
                "whylogs_category": c.whylogs.category if c.whylogs else None,
                "critical": c.column in result.policy.critical,
                "role": c.role,
                "severe": c.severe,
                "criteria": list(c.criteria),
                "importance": c.importance,
                "note": c.note,
            }
            for c in result.drifted
        ],
        "reference": reference,
        "targets": list(targets),
        "report": report,
    }


@dataclass(frozen=True)
class LogSink:
    """A structured warning in the JSON logs, for whatever ships them."""

    name: str = "log"

    def send(self, alert: dict[str, Any]) -> None:
        # Drift, performance and skew alerts share the envelope; the kind names the line.
        extra: dict[str, Any] = {
            "model_tag": alert.get("model_tag"),
            "window": alert.get("window"),
            "reasons": alert.get("reasons"),
        }
        if "drifted" in alert:
            extra["drifted"] = [d["column"] for d in alert["drifted"]]
        log.warning(f"{alert.get('kind', 'drift')} alert", extra=extra)


@dataclass(frozen=True)
class JsonlSink:
    """Appends one line per alert. A single small O_APPEND write lands whole."""

    path: Path
    name: str = "jsonl"

    def send(self, alert: dict[str, Any]) -> None:
        line = (json.dumps(alert, sort_keys=True, default=str) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise AlertError(f"{self.path}: cannot append the alert: {err.strerror}") from None


@dataclass(frozen=True)
class WebhookSink:
    """POSTs the alert as JSON; any 2xx answer counts as delivered."""

    url: str
    timeout_seconds: float = 5.0
    name: str = "webhook"

    def __post_init__(self) -> None:
        parsed = urlparse(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"webhook must be an http(s) URL, got {self.url!r}")

    def send(self, alert: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(alert, default=str).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                status = response.status
        except urllib.error.HTTPError as err:
            raise AlertError(f"webhook {self.url} answered {err.code}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise AlertError(f"webhook {self.url} unreachable: {reason}") from None
        if not 200 <= status < 300:
            raise AlertError(f"webhook {self.url} answered {status}")


def dispatch(alert: dict[str, Any], sinks: Sequence[AlertSink]) -> list[str]:
    """Send to every sink; return the errors (empty when all delivered)."""
    errors = []
    for sink in sinks:
        try:
            sink.send(alert)
        except Exception as err:
            # One broken sink must not stop the others from hearing about drift.
            log.error("alert not delivered", extra={"sink": sink.name, "err": str(err)})
            errors.append(f"{sink.name}: {err}")
    return errors
