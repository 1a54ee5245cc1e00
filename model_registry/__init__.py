"""The model registry's shared terms: its name, its labels, and which model is champion.

The registry is the BentoML model store under ``settings.bentoml_home``. Training
writes it (``training/registry.py`` documents the whole contract); serving and
monitoring only read it. All three take the names and the champion rule from
here, so they cannot drift apart, and none of them imports another.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_repo.settings import Settings

if TYPE_CHECKING:
    from model_registry.bentoml_compat import ModelStore

MODEL_NAME = "flight_delay"
STAGE_LABEL = "stage"
PROMOTED_AT_LABEL = "promoted_at"
CANDIDATE, CHAMPION, ARCHIVED = "candidate", "champion", "archived"
STAGES = (CANDIDATE, CHAMPION, ARCHIVED)


def open_model_store(settings: Settings) -> ModelStore:
    """The BentoML model store of ``settings``, created if it does not exist yet."""
    # BentoML reads BENTOML_HOME when first imported; pin it to this registry.
    os.environ.setdefault("BENTOML_HOME", str(settings.bentoml_home))
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    from model_registry.bentoml_compat import new_model_store

    path = settings.bentoml_home / "models"
    path.mkdir(parents=True, exist_ok=True)
    return new_model_store(path)


def champion_rank(labels: Mapping[str, str], creation_time: datetime) -> tuple[str, datetime]:
    """Among models labelled champion, the highest rank is served.

    A promotion labels the new champion before it archives the old one, so for a
    moment (or after a crash in between) two models can carry the label: the
    latest ``promoted_at`` wins, then the newest model.
    """
    return labels.get(PROMOTED_AT_LABEL, ""), creation_time


def pick_champion(models: Iterable[Any]) -> Any | None:
    """The champion among BentoML ``models``, or None if none is labelled so."""
    champions = [m for m in models if m.info.labels.get(STAGE_LABEL) == CHAMPION]
    if not champions:
        return None
    return max(champions, key=lambda m: champion_rank(m.info.labels, m.info.creation_time))


def relative_to_data(data_dir: Path, path: Path | str) -> str:
    """How metadata records a file: relative to the data dir when it lies inside it.

    A data dir copied or moved elsewhere then still finds every model's training
    set, report and reference profile. Files outside the data dir keep their
    absolute path.
    """
    absolute = Path(path).resolve()
    try:
        return absolute.relative_to(Path(data_dir).resolve()).as_posix()
    except ValueError:
        return str(absolute)


def resolve_data_path(data_dir: Path, value: str | None) -> Path | None:
    """The file a metadata path names: relative ones under ``data_dir``, absolute ones
    (metadata written before paths were relative) as they are. ``""`` is None."""
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else Path(data_dir) / path
