"""Reading the model registry (the BentoML model store) for monitoring.

Monitoring depends on the registry's contract (docs/training.md, "The registry
contract"), never on ``training/`` or ``serving/``: models are named
``flight_delay``, the label ``stage=champion`` marks the served one (the latest
``promoted_at`` wins a tie), and the metadata carries ``threshold``,
``metrics`` (validation), ``feature_service``, ``model_inputs`` and
``reference_profile``. Only metadata is read here; no model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feature_repo.settings import Settings
from model_registry import (
    MODEL_NAME,
    STAGE_LABEL,
    open_model_store,
    pick_champion,
    resolve_data_path,
)
from model_registry.bentoml_compat import read_model
from model_registry.integrity import scan_models


class RegistryLookupError(LookupError):
    """The model (or the champion) is not in the registry; the message says where it looked."""


@dataclass(frozen=True)
class ModelInfo:
    tag: str
    stage: str
    metadata: dict[str, Any] = field(repr=False)
    # Metadata paths are relative to the data dir (older models recorded absolute ones).
    data_dir: Path = field(default=Path("."), repr=False)

    @property
    def threshold(self) -> float | None:
        value = self.metadata.get("threshold")
        return None if value is None else float(value)

    @property
    def validation_metrics(self) -> dict[str, float]:
        metrics = self.metadata.get("metrics") or {}
        return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}

    @property
    def feature_service(self) -> str | None:
        value = self.metadata.get("feature_service")
        return str(value) if value else None

    @property
    def model_inputs(self) -> list[str]:
        return [str(c) for c in self.metadata.get("model_inputs") or []]

    @property
    def validation_window(self) -> dict[str, Any]:
        return dict(self.metadata.get("validation_window") or {})

    @property
    def reference_profile(self) -> Path | None:
        return resolve_data_path(self.data_dir, self.metadata.get("reference_profile"))


def _store(settings: Settings) -> Any:
    if not (settings.bentoml_home / "models").is_dir():  # reading never creates one
        raise RegistryLookupError(f"no model registry at {settings.bentoml_home}")
    return open_model_store(settings)


def _info(model: Any, settings: Settings) -> ModelInfo:
    labels = dict(model.info.labels)
    return ModelInfo(
        tag=str(model.tag),
        stage=labels.get(STAGE_LABEL, ""),
        metadata=dict(model.info.metadata),
        data_dir=settings.data_dir,
    )


def champion(settings: Settings) -> ModelInfo:
    _store(settings)
    # An unreadable entry is skipped with a warning naming it, never fatal.
    best = pick_champion(scan_models(settings).models)
    if best is None:
        raise RegistryLookupError(
            f"no champion model '{MODEL_NAME}' in the registry at {settings.bentoml_home}"
        )
    return _info(best, settings)


def model_info(settings: Settings, tag: str | None = None) -> ModelInfo:
    """The model ``tag`` (``flight_delay:<version>`` or a bare version), else the champion."""
    if not tag:
        return champion(settings)
    if ":" not in tag:
        tag = f"{MODEL_NAME}:{tag}"
    store = _store(settings)
    name, _, version = tag.partition(":")
    folder = settings.bentoml_home / "models" / name / version
    try:
        # By its folder when it has one: the same model, and its parse is kept (read_model).
        if version and "/" not in version and (folder / "model.yaml").is_file():
            return _info(read_model(folder), settings)
        return _info(store.get(tag), settings)
    except Exception:  # NotFound, or a malformed tag
        raise RegistryLookupError(
            f"model {tag} is not in the registry at {settings.bentoml_home}"
        ) from None
