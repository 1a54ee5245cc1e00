"""The Feast registry of a data dir: readable, and pointing at *this* data dir.

Feast's ``registry.db`` stores each source's absolute path as it was at
``apply``. A copy of the data dir (without ``apply``) then built training sets
and skew reports from the *original's* feature files, while materialization
used the copy's. :func:`check_registry` runs when a store is opened: when the
sources point elsewhere, the definitions are re-applied with this data dir's
paths, so a copy works on its own and never reads the original.

A corrupt ``registry.db`` used to give a protobuf traceback from every
command; it now gives one line naming the file and saying that ``apply``
rebuilds it (``apply`` sets the corrupt file aside first).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from feature_repo.settings import Settings

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)


class CorruptRegistry(RuntimeError):
    """``registry.db`` cannot be read; the message names it and how to rebuild it."""


def registry_file(settings: Settings) -> Path:
    return settings.feast_dir / "registry.db"


def check_registry(store: FeatureStore, settings: Settings) -> None:
    """Fail clearly on a corrupt registry; re-point a moved one at this data dir."""
    path = registry_file(settings)
    if not path.exists():
        return
    try:
        views = store.list_feature_views()
    except Exception as err:
        raise CorruptRegistry(
            f"the Feast registry {path} is unreadable ({type(err).__name__}); "
            "`python -m feature_repo apply` rebuilds it from the definitions"
        ) from None
    here = (str(settings.features_dir), str(settings.features_dir.resolve()))
    elsewhere = [
        v.name
        for v in views
        if (source := getattr(v.batch_source, "path", None)) and not source.startswith(here)
    ]
    if elsewhere:
        from feature_repo.store import apply_definitions

        log.warning(
            "feast registry points at another data dir; re-applying with this one",
            extra={"registry": str(path), "views": elsewhere, "features_dir": here[0]},
        )
        apply_definitions(store, settings)


def set_aside_if_corrupt(settings: Settings) -> Path | None:
    """Before ``apply``: move an unreadable registry aside, so apply can rebuild it."""
    path = registry_file(settings)
    if not path.exists():
        return None
    from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto

    try:
        RegistryProto().ParseFromString(path.read_bytes())
        return None
    except Exception:
        aside = path.with_name(f"registry.db.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        path.rename(aside)
        log.warning("corrupt feast registry set aside", extra={"path": str(aside)})
        return aside
