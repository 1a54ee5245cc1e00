"""The BentoML internals the model registry relies on (BentoML 1.4), used here and nowhere else.

BentoML has no public API for four things the registry needs:

- a model store at a path of our choosing (``ModelStore``): the registry lives in
  the data directory, never in BentoML's global home;
- creating a model in that store (``bentoml.models.create``'s ``_model_store``);
- reading one model folder on its own (``Model.from_path``), so that one unreadable
  entry is skipped instead of failing the whole store's listing;
- relabelling a stored model: ``ModelInfo`` is frozen and ``Model.flush`` rewrites
  ``model.yaml`` in place, so a new ``ModelInfo`` is built and dumped here, and the
  caller swaps the file atomically.

``tests/model/test_bentoml_compat.py`` fails, naming the BentoML change, when an
upgrade breaks one of them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from feature_repo.atomic_io import file_signature

if TYPE_CHECKING:
    from bentoml._internal.models.model import Model, ModelStore

__all__ = [
    "Model",
    "ModelStore",
    "create_model",
    "new_model_store",
    "read_model",
    "relabelled_model_yaml",
]


def new_model_store(path: Path) -> ModelStore:
    """A BentoML model store rooted at ``path`` (which must exist)."""
    from bentoml._internal.models.model import ModelStore

    return ModelStore(path)


# folder -> (the model.yaml's file_signature when parsed, the model read then).
_read_cache: dict[str, tuple[tuple[int, int, int], Model]] = {}


def read_model(folder: Path) -> Model:
    """The model stored in ``folder`` (``<store>/<name>/<version>``); raises whatever
    BentoML raises for an unreadable ``model.yaml``.

    BentoML parses ``model.yaml`` with the pure-Python YAML loader: about 0.4 s a model,
    and a loop reads every model's several times a day (the champion, each model's
    threshold and reference). So a parse is kept while the file is the same one (the
    same inode, mtime and size: a relabel swaps in a new file), and each caller gets
    its own deep copy, which it may change freely.
    """
    import copy

    from bentoml._internal.models.model import MODEL_YAML_FILENAME, Model

    key = str(folder)
    stamp = file_signature(Path(folder) / MODEL_YAML_FILENAME)
    if stamp is None:
        _read_cache.pop(key, None)
        return Model.from_path(key)  # raises as BentoML does for a missing file
    cached = _read_cache.get(key)
    if cached is None or cached[0] != stamp:
        cached = _read_cache[key] = (stamp, Model.from_path(key))
    return copy.deepcopy(cached[1])


def create_model(store: ModelStore, name: str, **options: Any) -> AbstractContextManager[Model]:
    """``bentoml.models.create`` into ``store``; the model is saved when the block exits."""
    import bentoml

    return cast(
        AbstractContextManager["Model"], bentoml.models.create(name, _model_store=store, **options)
    )


def relabelled_model_yaml(
    model: Model, labels: dict[str, str], metadata: dict[str, Any]
) -> tuple[Path, str]:
    """The model's ``model.yaml`` path, and its text with ``labels`` and ``metadata`` merged
    in. ``ModelInfo``'s constructor validates both, as a save would."""
    from bentoml._internal.models.model import MODEL_YAML_FILENAME, ModelInfo

    info = model.info
    new_info = ModelInfo(
        tag=info.tag,
        module=info.module,
        labels={**info.labels, **labels},
        options=info.options,
        metadata={**info.metadata, **metadata},
        context=info.context,
        signatures=info.signatures,
        api_version=info.api_version,
        creation_time=info.creation_time,
    )
    # Typed None by BentoML; without a stream it returns the YAML text.
    text = cast(str, new_info.dump())
    return Path(model.path) / MODEL_YAML_FILENAME, text
