"""Where monitoring files live, below ``Settings.monitoring_dir``.

One convention shared by the service (writer), cron and CI (readers) and ``make drift``.
"""

from __future__ import annotations

from pathlib import Path

from feature_repo.settings import Settings


def profiles_dir(settings: Settings) -> Path:
    """Served-data profiles, ``profile-<interval start>[-<writer>].bin``."""
    return settings.monitoring_dir / "profiles"


def predictions_dir(settings: Settings) -> Path:
    """The prediction log's Parquet parts."""
    return settings.monitoring_dir / "predictions"


def served_features_dir(settings: Settings) -> Path:
    """The served-features log's Parquet parts (entity keys, request fields, served values)."""
    return settings.monitoring_dir / "served_features"


def performance_dir(settings: Settings) -> Path:
    """The latest ``performance.json``."""
    return settings.monitoring_dir / "performance"


def skew_dir(settings: Settings) -> Path:
    """The latest ``skew.json``."""
    return settings.monitoring_dir / "skew"


def drift_dir(settings: Settings) -> Path:
    """The latest ``drift.json`` and ``report.html``."""
    return settings.monitoring_dir / "drift"


def alerts_path(settings: Settings) -> Path:
    """The default JSON-lines alert sink."""
    return settings.monitoring_dir / "alerts.jsonl"


def reference_path(settings: Settings, model_tag: str) -> Path:
    """Where a model version's reference profile goes, e.g. ``flight_delay-abc123.bin``.

    The BentoML store treats a saved model as immutable, so the profile sits
    beside the store and the model's metadata records its path.
    """
    return settings.monitoring_dir / "references" / f"{model_tag.replace(':', '-')}.bin"


def replay_summary_path(settings: Settings) -> Path:
    """The last serving replay's figures (``python -m serving demo``), for the overview."""
    return settings.reports_dir / "serving" / "replay.json"


def challenger_profiles_dir(settings: Settings, model_tag: str) -> Path:
    """A challenger's served-data profiles during a rollout, apart from the champion's."""
    return settings.monitoring_dir / "challenger_profiles" / model_tag.replace(":", "-")
