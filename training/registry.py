"""The model registry: the BentoML model store under ``settings.bentoml_home``.

The registry is the only contact between training and the pipelines that use a
model: serving and monitoring never import ``training/``. The names and the
champion rule below are defined once, in ``model_registry``, which all three
import. What they may rely on:

- **Name and versions.** Models are stored under the name ``flight_delay``; a
  version is a BentoML tag, ``flight_delay:<version>``.
- **Stage.** The label ``stage`` is ``candidate`` (trained, not served),
  ``champion`` (the model to serve) or ``archived`` (a former champion).
  Serving lists the models named ``flight_delay`` and takes the one labelled
  ``stage=champion``. A promotion writes the new champion before archiving
  the old one, so for a moment (or after a crash in between) two models can
  carry the label; the one with the latest ``promoted_at`` label wins.
- **Artifact.** A scikit-learn Pipeline stored the ``bentoml.sklearn`` way
  (``bentoml.sklearn.load_model(tag)``). Call ``predict_proba(frame)[:, 1]``
  on a DataFrame with exactly the columns ``metadata["model_inputs"]``:
  numeric columns as floats (missing as NaN or None), the
  ``metadata["categorical_inputs"]`` as strings (missing as None; unseen
  values are treated as missing). A flight is predicted late when the
  probability is at least ``metadata["threshold"]``.
- **Lineage** in ``metadata``: ``feature_service`` and ``features`` (the
  service's feature list, ``<view>__<feature>``), ``training_set`` (window,
  fingerprint, ``as_of``, raw watermark, path), ``train_window``,
  ``validation_window`` (with the rows' count and ``fingerprint``),
  ``git_commit``, ``metrics``, ``slices``, ``baselines``, ``threshold``,
  ``params``, ``reproducibility`` (seed, threads, CV folds, hyperparameters,
  library versions, ``lock_sha256``), ``model_card``, ``report`` and
  ``reference_profile``.
- ``reference_profile`` is the path of the training data's whylogs reference
  profile, recorded with :func:`attach_reference_profile`. It is ``""`` while
  none is attached (BentoML metadata cannot hold ``null``).
- **Paths** in metadata (``training_set.path``, ``report.*``,
  ``reference_profile``) are relative to the data dir, so a copied or moved
  data dir still resolves them (:func:`metadata_path`); models saved before
  that recorded absolute paths, which are read as they are.

``BENTOML_HOME`` must name ``settings.bentoml_home`` before ``bentoml`` is
imported (:func:`import_bentoml` does it), so a bare ``bentoml.models.get``
never reads another store. The functions here also pass the store explicitly,
so one process (a test session) can work with several registries.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from feature_repo.atomic_io import atomic_path
from feature_repo.settings import Settings
from model_registry import (
    CANDIDATE,
    CHAMPION,
    MODEL_NAME,
    PROMOTED_AT_LABEL,
    STAGE_LABEL,
    STAGES,
    champion_rank,
    open_model_store,
    relative_to_data,
    resolve_data_path,
)
from model_registry.bentoml_compat import create_model
from model_registry.integrity import BrokenEntry, one_line, scan_models

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sklearn.pipeline import Pipeline

    from model_registry.bentoml_compat import Model, ModelStore

log = logging.getLogger(__name__)

ARTIFACT_FILE = "saved_model.pkl"  # the file name bentoml.sklearn.load_model reads
SKLEARN_MODULE = "bentoml.sklearn"
METADATA_SCHEMA_VERSION = 1


class RegistryError(RuntimeError):
    """A registry operation was refused; the message says why. Nothing was changed."""


class ModelNotFound(RegistryError):
    pass


class MissingMetadata(RegistryError):
    pass


@dataclass(frozen=True)
class ModelRecord:
    """What the registry knows about one stored model version."""

    tag: str
    labels: dict[str, str]
    metadata: dict[str, Any]
    creation_time: datetime
    path: Path

    @property
    def stage(self) -> str:
        return self.labels.get(STAGE_LABEL, "")

    @property
    def version(self) -> str:
        return self.tag.split(":", 1)[1]


def import_bentoml(settings: Settings) -> ModuleType:
    """Import ``bentoml`` with its home pinned to the registry of ``settings``."""
    os.environ["BENTOML_HOME"] = str(settings.bentoml_home)
    # Training runs offline; BentoML's usage analytics would otherwise phone home.
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    import bentoml

    return bentoml


def model_store(settings: Settings) -> ModelStore:
    import_bentoml(settings)
    return open_model_store(settings)


def _record(model: Model) -> ModelRecord:
    info = model.info
    return ModelRecord(
        tag=str(model.tag),
        labels=dict(info.labels),
        metadata=dict(info.metadata),
        creation_time=info.creation_time,
        path=Path(model.path),
    )


def list_models(settings: Settings) -> list[ModelRecord]:
    """Every readable stored version of the model, oldest first.

    An entry whose ``model.yaml`` cannot be read is skipped with a warning naming
    it (:func:`broken_models` lists them), so one bad file never hides the rest.
    """
    import_bentoml(settings)
    records = [_record(m) for m in scan_models(settings).models]
    return sorted(records, key=lambda r: (r.creation_time, r.tag))


def broken_models(settings: Settings) -> list[BrokenEntry]:
    """Entries in the store that cannot be read as models, with the reason."""
    import_bentoml(settings)
    return scan_models(settings, warn=False).broken


CHAMPION_ALIAS = "champion"


def get_model(settings: Settings, tag: str) -> ModelRecord:
    """Look up ``tag``: ``flight_delay:<version>``, a bare ``<version>``, ``latest``, or
    ``champion`` (the model serving uses)."""
    if tag.strip() in (CHAMPION_ALIAS, f"{MODEL_NAME}:{CHAMPION_ALIAS}"):
        found = champion(settings)
        if found is None:
            raise ModelNotFound(
                f"no champion in the registry at {settings.bentoml_home} "
                "(`python -m training models promote TAG` makes one)"
            )
        return found
    return _record(_stored(settings, tag))


def _stored(settings: Settings, tag: str) -> Model:
    import_bentoml(settings)
    from bentoml.exceptions import BentoMLException

    text = tag.strip()
    if not text:
        raise ModelNotFound("empty model tag")
    name, _, version = text.rpartition(":") if ":" in text else (MODEL_NAME, "", text)
    if name != MODEL_NAME:
        raise ModelNotFound(f"unknown model {text!r}: this registry holds {MODEL_NAME!r} only")
    if version == "latest":  # BentoML's own lookup would parse every entry, broken ones too
        readable = list_models(settings)
        version = readable[-1].version if readable else version
    folder = settings.bentoml_home / "models" / MODEL_NAME / version
    try:
        model = model_store(settings).get(f"{MODEL_NAME}:{version}")
    except Exception as err:
        if version and folder.is_dir():
            raise RegistryError(
                f"model {MODEL_NAME}:{version} is unreadable ({folder / 'model.yaml'}): "
                f"{one_line(err)}"
            ) from None
        if not isinstance(err, BentoMLException | ValueError):
            raise
        raise ModelNotFound(
            f"no model {MODEL_NAME}:{version} in the registry at {settings.bentoml_home} "
            "(`python -m training models list` shows what is there)"
        ) from None
    return model


def champions(settings: Settings) -> list[ModelRecord]:
    """Models labelled champion, the one serving should pick first."""
    found = [r for r in list_models(settings) if r.stage == CHAMPION]
    return sorted(found, key=lambda r: champion_rank(r.labels, r.creation_time), reverse=True)


def champion(settings: Settings) -> ModelRecord | None:
    found = champions(settings)
    return found[0] if found else None


def metadata_path(settings: Settings, value: str | None) -> Path | None:
    """The file a metadata path names, in this data dir (None for ``""``)."""
    return resolve_data_path(settings.data_dir, value)


def without_none(value: Any) -> Any:
    """BentoML metadata refuses ``None``; an absent key says the same thing."""
    if isinstance(value, dict):
        return {str(k): without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [without_none(v) for v in value if v is not None]
    return value


def save_model(
    settings: Settings, pipeline: Pipeline, metadata: dict[str, Any], tag: str | None = None
) -> ModelRecord:
    """Store ``pipeline`` as a new candidate version and return its record."""
    bentoml = import_bentoml(settings)
    import joblib
    import sklearn

    context = bentoml.models.ModelContext(
        framework_name="sklearn", framework_versions={"scikit-learn": sklearn.__version__}
    )
    metadata = dict(without_none(metadata), schema_version=METADATA_SCHEMA_VERSION)
    metadata.setdefault("reference_profile", "")
    with create_model(
        model_store(settings),
        tag or MODEL_NAME,
        labels={STAGE_LABEL: CANDIDATE},
        metadata=metadata,
        module=SKLEARN_MODULE,
        api_version="v1",
        signatures={"predict_proba": {"batchable": True, "batch_dim": 0}},
        context=context,
    ) as model:
        joblib.dump(pipeline, model.path_of(ARTIFACT_FILE))
        saved_tag = str(model.tag)
    log.info("model saved", extra={"tag": saved_tag, "stage": CANDIDATE})
    return get_model(settings, saved_tag)


def load_pipeline(settings: Settings, tag: str) -> Pipeline:
    import joblib

    record = get_model(settings, tag)
    artifact = record.path / ARTIFACT_FILE
    if not artifact.is_file():
        raise RegistryError(f"{record.tag} has no {ARTIFACT_FILE}; the stored model is incomplete")
    return joblib.load(artifact)


@dataclass(frozen=True)
class PendingUpdate:
    """A rewritten ``model.yaml``, built and validated, waiting to replace the old one."""

    target: Path
    text: str
    mode: int

    def commit(self) -> None:
        with atomic_path(self.target) as tmp:
            tmp.write_text(self.text)
            tmp.chmod(self.mode)  # the temporary file is private; keep the store's permissions


def prepare_update(
    settings: Settings,
    tag: str,
    labels: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> PendingUpdate:
    """Merge ``labels`` and ``metadata`` into a stored model's ``model.yaml``, in memory.

    BentoML 1.4 has no public API to relabel a stored model: ``ModelInfo`` is
    frozen and ``Model.flush`` rewrites the file in place. So a new
    ``ModelInfo`` is built (its constructor validates labels and metadata);
    :meth:`PendingUpdate.commit` writes it beside the old file and renames it
    over it, so a reader sees the old stage or the new one, never half a file.
    Building is the slow part (BentoML parses ``model.yaml`` with pure-Python
    YAML); a promotion prepares every change first, then commits them back to
    back, which keeps the moment with two champions short.
    """
    from model_registry.bentoml_compat import relabelled_model_yaml

    model = _stored(settings, tag)
    target, text = relabelled_model_yaml(model, labels or {}, without_none(metadata or {}))
    return PendingUpdate(target, text, target.stat().st_mode & 0o777)


def update_model(
    settings: Settings,
    tag: str,
    labels: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    prepare_update(settings, tag, labels, metadata).commit()


def prepare_stage(
    settings: Settings, tag: str, stage: str, promoted_at: str | None = None
) -> PendingUpdate:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    labels = {STAGE_LABEL: stage}
    if promoted_at is not None:
        labels[PROMOTED_AT_LABEL] = promoted_at
    return prepare_update(settings, tag, labels=labels)


def set_stage(settings: Settings, tag: str, stage: str, promoted_at: str | None = None) -> None:
    prepare_stage(settings, tag, stage, promoted_at).commit()


@contextmanager
def registry_lock(settings: Settings) -> Iterator[None]:
    """Serialise stage changes: two concurrent promotions must not both win."""
    from filelock import FileLock

    settings.bentoml_home.mkdir(parents=True, exist_ok=True)
    with FileLock(str(settings.bentoml_home / ".registry.lock"), timeout=60):
        yield


def attach_reference_profile(tag: str, path: Path | str, settings: Settings | None = None) -> None:
    """Hook for monitoring: record where the training data's whylogs reference profile is.

    Monitoring calls this after profiling the training set named in
    ``metadata["training_set"]``; drift reports then compare live traffic
    with the profile at ``metadata["reference_profile"]``.
    """
    settings = settings or Settings.from_env()
    profile = Path(path)
    if not profile.exists():
        raise RegistryError(f"reference profile {profile} does not exist")
    with registry_lock(settings):
        recorded = relative_to_data(settings.data_dir, profile)
        update_model(settings, tag, metadata={"reference_profile": recorded})
    log.info("reference profile attached", extra={"tag": tag, "path": str(profile)})
