"""Work-arounds for Feast 0.67 behaviour that would otherwise lose data silently.

Each patch is idempotent, applied once by :func:`feature_repo.store.open_store`,
and covered by a test that fails when the upstream behaviour changes.
"""

from __future__ import annotations

from typing import Any

_PATCHED = False


def apply_patches() -> None:
    global _PATCHED
    if _PATCHED:
        return
    _emit_projected_names_from_python_odfvs()
    _PATCHED = True


def _emit_projected_names_from_python_odfvs() -> None:
    """Online reads drop Python-mode on-demand features when ``full_feature_names=True``.

    ``utils._augment_response_with_on_demand_transforms`` keeps only transformed
    columns whose names match the requested refs, which are ``view__feature``
    under full names; the Python (dict) path never renames the UDF's short
    names, unlike the Arrow path used offline. The result: the features vanish
    from the response without an error. Emitting both names from the dict path
    lets the existing selection find them, in either naming mode.
    """
    from feast.on_demand_feature_view import OnDemandFeatureView

    original = OnDemandFeatureView.transform_dict

    def transform_dict(self: OnDemandFeatureView, feature_dict: dict[str, Any]) -> dict[str, Any]:
        output = original(self, feature_dict)
        for feature in self.features:
            projected = self._get_projected_feature_name(feature.name)
            if feature.name in output and projected not in output:
                output[projected] = output[feature.name]
        return output

    OnDemandFeatureView.transform_dict = transform_dict  # type: ignore[method-assign]


def rebase_file_sources(store: Any, features_dir: str) -> None:
    """Make every file source of ``store``'s registry point into ``features_dir``.

    Feast's ``registry.db`` stores each source's absolute path as it was at
    ``apply``, so a copied data dir read the original's feature files. The
    registry is re-read whenever its file changes (``Registry._registry_store``),
    so the rebase wraps that read, and fixes the proto already loaded. Nothing is
    written: the registry file stays as it is, only this process reads it rebased.
    """
    registry = store.registry
    backing = getattr(registry, "_registry_store", None)
    if backing is None or getattr(backing, "_feastline_rebased", None) == features_dir:
        return
    read = backing.get_registry_proto

    def get_registry_proto() -> Any:
        proto = read()
        _rebase_proto(proto, features_dir)
        return proto

    backing.get_registry_proto = get_registry_proto
    backing._feastline_rebased = features_dir
    cached = getattr(registry, "cached_registry_proto", None)
    if cached is not None:
        _rebase_proto(cached, features_dir)


def _rebase_proto(proto: Any, features_dir: str) -> None:
    prefix = features_dir.rstrip("/") + "/"
    sources = [view.spec.batch_source for view in proto.feature_views]
    sources += list(proto.data_sources)
    for source in sources:
        uri = source.file_options.uri
        if uri and not uri.startswith(prefix) and "/features/" in uri:
            source.file_options.uri = prefix + uri.rpartition("/features/")[2]
