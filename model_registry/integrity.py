"""Fault isolation for the registry: one bad model entry never hides the others.

BentoML's ``ModelStore.list`` parses every version's ``model.yaml`` and raises on
the first one it cannot read, so a single corrupt archived model used to make
the champion unfindable for serving, monitoring and every ``models`` command.
:func:`scan_models` reads the versions one at a time instead: unreadable ones
are returned as :class:`BrokenEntry` (and logged with a warning naming them),
readable ones as BentoML models. :func:`model_problems` says what a readable
model lacks to be complete (its artifact, its reference profile), for ``models
list``, the promotion gate and serving's start-up check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feature_repo.settings import Settings
from model_registry import MODEL_NAME, open_model_store, resolve_data_path
from model_registry.bentoml_compat import read_model

ARTIFACT_FILE = "saved_model.pkl"  # what bentoml.sklearn.load_model reads
MODEL_YAML = "model.yaml"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokenEntry:
    """A version folder in the store that cannot be read as a model."""

    tag: str
    path: Path
    reason: str


@dataclass(frozen=True)
class RegistryScan:
    models: list[Any]  # bentoml Model objects that could be read
    broken: list[BrokenEntry]


def scan_models(settings: Settings, *, warn: bool = True) -> RegistryScan:
    """Every version of ``flight_delay``: readable models, and the entries that are not."""
    root = settings.bentoml_home / "models" / MODEL_NAME
    if not root.is_dir():
        return RegistryScan([], [])
    open_model_store(settings)  # pins BENTOML_HOME before bentoml is imported

    models: list[Any] = []
    broken: list[BrokenEntry] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        tag = f"{MODEL_NAME}:{folder.name}"
        try:
            models.append(read_model(folder))
        except Exception as err:  # YAML, schema or I/O: whatever it is, skip this one entry
            reason = f"{folder / MODEL_YAML} is unreadable: {one_line(err)}"
            broken.append(BrokenEntry(tag, folder, reason))
            if warn:
                log.warning("skipping unreadable model %s: %s", tag, reason)
    return RegistryScan(models, broken)


def model_problems(path: Path | str, metadata: dict[str, Any], data_dir: Path) -> list[str]:
    """What a readable model lacks to be complete; empty when nothing is missing.

    Complete means: the artifact is there and not empty, and the reference
    profile its metadata names exists. ``train`` writes the profile before it
    saves the model, so only a run killed half-way (or a model saved by hand)
    lacks one; such a model is listed as broken and never promoted.
    """
    problems = []
    artifact = Path(path) / ARTIFACT_FILE
    try:
        if artifact.stat().st_size == 0:
            problems.append(f"{artifact} is empty")
    except OSError:
        problems.append(f"{artifact} is missing")
    reference = metadata.get("reference_profile")
    if not reference:
        problems.append("no reference profile is attached")
    elif not (resolved := resolve_data_path(data_dir, reference)) or not resolved.is_file():
        problems.append(f"reference profile {resolved} is missing")
    return problems


def one_line(err: BaseException) -> str:
    """An exception as one short line: YAML and pydantic errors span many."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}"
