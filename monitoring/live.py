"""Monitoring as a controller asks for it, in-process: no console, no report files.

- :func:`window_drift`: the served profiles of a time window against a model's
  reference, judged with the reference's calibrated null when it has one (what
  ``python -m monitoring compare`` does for a folder of profiles).
- :func:`live_performance`: each model's metrics on the predictions of a window
  whose labels are knowable at ``now`` (what ``python -m monitoring
  performance`` computes).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from feature_repo.settings import Settings
from monitoring import layout
from monitoring.calibration import CalibrationError, null_path, read_calibration
from monitoring.drift import DriftPolicy, DriftResult, compare
from monitoring.intervals import parse_stamp
from monitoring.performance import (
    OutcomeSpec,
    PerformanceInputError,
    PerformancePolicy,
    PerformanceResult,
    evaluate,
    read_outcomes,
)
from monitoring.predictions import read_predictions
from monitoring.profiles import Profile, merge, read_profile
from monitoring.registry import RegistryLookupError, model_info


def profile_files_between(folder: Path, start: datetime, end: datetime) -> list[Path]:
    """Profiles whose interval starts in ``[start, end)``, from their file names
    (``<prefix>-<YYYYmmddTHHMMSSZ>[-<writer>].bin``)."""
    if not folder.is_dir():
        return []
    chosen = []
    for path in sorted(folder.glob("*.bin")):
        if path.name.startswith("."):
            continue
        parts = path.stem.split("-")
        stamps = [p for p in parts[1:] if len(p) == 16 and p.endswith("Z")]
        if not stamps:
            continue
        try:
            began = parse_stamp(stamps[0])
        except ValueError:
            continue
        if start <= began < end:
            chosen.append(path)
    return chosen


_references: dict[Path, tuple[int, Profile]] = {}


def _reference(path: Path) -> Profile:
    """A reference profile, kept while its file is unchanged (a loop reads it daily)."""
    stamp = path.stat().st_mtime_ns
    cached = _references.get(path)
    if cached is None or cached[0] != stamp:
        cached = _references[path] = (stamp, read_profile(path))
    return cached[1]


def window_drift(
    settings: Settings,
    model_tag: str,
    start: datetime,
    end: datetime,
    policy: DriftPolicy | None = None,
) -> DriftResult | None:
    """Drift of the champion's served profiles in ``[start, end)``; None when none were served."""
    files = profile_files_between(layout.profiles_dir(settings), start, end)
    if not files:
        return None
    info = model_info(settings, model_tag)
    reference_file = info.reference_profile or layout.reference_path(settings, info.tag)
    reference = _reference(reference_file)
    calibration = None
    if null_path(reference_file).exists():
        try:
            calibration = read_calibration(null_path(reference_file))
        except CalibrationError:
            calibration = None
        if calibration is not None and not calibration.matches(reference):
            calibration = None
    target = merge(read_profile(path) for path in files)
    return compare(reference, target, policy or DriftPolicy(), calibration=calibration)


def live_performance(
    settings: Settings,
    window: tuple[datetime, datetime],
    now: datetime,
    policy: PerformancePolicy | None = None,
    *,
    every: timedelta = timedelta(days=1),
    model_tag: str | None = None,
    threshold: float | None = None,
    outcome: OutcomeSpec | None = None,
    predictions_dir: Path | None = None,
) -> PerformanceResult:
    """Every model's (or ``model_tag``'s) performance on the labels known at ``now``.

    Raises :class:`PerformanceInputError` naming what is missing: no predictions
    in the window, or a model outside the registry without ``threshold``.
    """
    start, end = window
    outcome = outcome or OutcomeSpec()
    source = predictions_dir or layout.predictions_dir(settings)
    predictions = read_predictions(source, start, end)
    if model_tag:
        predictions = predictions[predictions["model_tag"] == model_tag]
    if predictions.empty:
        which = f" by {model_tag}" if model_tag else ""
        raise PerformanceInputError(
            f"{source}: no predictions{which} in {start.isoformat()} .. {end.isoformat()}"
        )
    models: dict[str, tuple[float, dict[str, float]]] = {}
    notes = []
    for tag in sorted(predictions["model_tag"].astype(str).unique()):
        try:
            info = model_info(settings, tag)
        except RegistryLookupError as err:
            if threshold is None:
                raise PerformanceInputError(
                    f"predictions by {tag} need its threshold: {err}; pass --threshold"
                ) from None
            notes.append(f"{tag}: not in the registry, so no validation metrics to compare with")
            models[tag] = (threshold, {})
            continue
        chosen = threshold if threshold is not None else info.threshold
        if chosen is None:
            raise PerformanceInputError(
                f"model {tag} has no threshold in its metadata; pass --threshold"
            )
        models[tag] = (chosen, info.validation_metrics)
    # Outcomes are filed by the day they became knowable, never before the prediction.
    outcomes = read_outcomes(settings.raw_dir, now, outcome, since=start.date() - timedelta(days=1))
    if end > now:
        notes.append(f"the window ends after now ({now.isoformat()}): later outcomes are unknown")
    return evaluate(predictions, outcomes, models, window, now, every, policy, outcome, notes)
