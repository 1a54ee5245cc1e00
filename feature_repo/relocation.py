"""The Feast registry of a data dir: readable, and read as belonging to *this* data dir.

Feast's ``registry.db`` stores each source's absolute path as it was at
``apply``. A copy of the data dir (without ``apply``) then built training sets
and skew reports from the *original's* feature files, while materialization
used the copy's. :func:`check_registry` runs when a store is opened and makes
the store read every file source under this data dir's ``features/``
(``feast_compat.rebase_file_sources``), without writing anything: a copy works
on its own and never reads the original.

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
    """Fail clearly on a corrupt registry; read a moved one as this data dir's."""
    from feature_repo.feast_compat import rebase_file_sources

    path = registry_file(settings)
    if not path.exists():
        return
    try:
        rebase_file_sources(store, str(settings.features_dir))
        store.list_feature_views()
    except Exception as err:
        raise CorruptRegistry(
            f"the Feast registry {path} is unreadable ({type(err).__name__}); "
            "`python -m feature_repo apply` rebuilds it from the definitions"
        ) from None


def _unreadable(path: Path) -> bool:
    from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto

    try:
        RegistryProto().ParseFromString(path.read_bytes())
    except Exception:
        return True
    return False


def registry_is_corrupt(settings: Settings) -> None:
    """Raise :class:`CorruptRegistry` if ``registry.db`` exists and does not parse."""
    path = registry_file(settings)
    if path.exists() and _unreadable(path):
        raise CorruptRegistry(
            f"the Feast registry {path} is corrupt; "
            "`python -m feature_repo apply` rebuilds it from the definitions"
        )


def set_aside_if_corrupt(settings: Settings) -> Path | None:
    """Before ``apply``: move an unreadable registry aside, so apply can rebuild it."""
    path = registry_file(settings)
    if not path.exists() or not _unreadable(path):
        return None
    aside = path.with_name(f"registry.db.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
    path.rename(aside)
    log.warning("corrupt feast registry set aside", extra={"path": str(aside)})
    return aside
