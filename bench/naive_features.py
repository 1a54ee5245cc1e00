"""Feast objects for the naive reference service (bench/naive_service.py), kept out of the repo's.

The naive service reads the same online store as ours, but with *pandas*-mode
on-demand views: the mode Feast's documentation leads with, and the one the
issue measured. :func:`register_naive_features` copies the project's registry
into a scratch folder and applies there, never to the project's registry:

- a pandas twin of every on-demand view in the model's feature service (for
  ``definitions.py``: ``flight_request_features`` and ``aircraft_turnaround``),
  with the same name, sources and schema, so the columns match the model's inputs;
- a feature service ``<service>_naive`` with the same feature views and the twins.

The UDF is module-level so that Feast (dill) stores it by reference: the naive
service finds it because it runs with ``bench/`` as its working directory.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from feature_repo.settings import Settings

NAIVE_SUFFIX = "_naive"


def request_features(inputs: pd.DataFrame) -> pd.DataFrame:
    """What a first pandas version looks like: datetimes, ``.dt`` accessors, vector maths.

    It computes every request-time feature it can from the columns it is given;
    Feast keeps only those in the view's schema (a twin of ``aircraft_turnaround``
    also gets the schedule fields, and drops what it does not declare).
    """
    out = pd.DataFrame(index=inputs.index)
    local = pd.to_datetime(
        inputs["sched_dep_epoch"] + inputs["sched_dep_utc_offset_min"] * 60, unit="s"
    )
    out["sched_hour"] = local.dt.hour.astype("int64")
    out["sched_weekday"] = local.dt.weekday.astype("int64")
    out["sched_month"] = local.dt.month.astype("int64")
    out["distance_miles"] = inputs["distance"].astype("float64")
    if "landed_at_epoch" in inputs.columns:
        hours = (inputs["sched_dep_epoch"] - inputs["landed_at_epoch"].astype("float64")) / 3600.0
        # Older registries called it ``hours_since_aircraft_landed``; emit both names.
        out["hours_since_landed"] = hours
        out["hours_since_aircraft_landed"] = hours
    return out


@dataclass(frozen=True)
class NaiveFeatures:
    repo_dir: Path  # holds feature_store.yaml for the naive service: scratch registry, real Redis
    feature_service: str
    twins: list[str]


def _config(settings: Settings, registry: Path, online_store: dict[str, Any]) -> dict[str, Any]:
    from feature_repo.store import repo_config_dict

    raw = repo_config_dict(settings)
    raw["registry"]["path"] = str(registry)
    raw["online_store"] = online_store
    return raw


def register_naive_features(settings: Settings, service_name: str, workdir: Path) -> NaiveFeatures:
    """Apply the pandas twins and their feature service to a copy of the registry."""
    from feast import FeatureService, FeatureStore, OnDemandFeatureView
    from feast.repo_config import RepoConfig

    from feature_repo.settings import FEATURE_REPO_DIR
    from feature_repo.store import quiet_feast_warnings, repo_config_dict

    quiet_feast_warnings()
    repo_dir = workdir / "naive_repo"
    repo_dir.mkdir(parents=True, exist_ok=True)
    registry = repo_dir / "registry.db"
    shutil.copyfile(settings.feast_dir / "registry.db", registry)
    # Registering touches only the registry; a throwaway SQLite file keeps Feast's
    # infra update away from the shared Redis.
    scratch_online = {"type": "sqlite", "path": str(repo_dir / "scratch_online.db")}
    store = FeatureStore(
        config=RepoConfig(repo_path=FEATURE_REPO_DIR, **_config(settings, registry, scratch_online))
    )
    service = store.get_feature_service(service_name)
    python_views = {v.name: v for v in store.list_on_demand_feature_views()}
    features: list[Any] = []
    twins: list[OnDemandFeatureView] = []
    for projection in service.feature_view_projections:
        names = [f.name for f in projection.features]
        if projection.name not in python_views:
            features.append(store.get_feature_view(projection.name)[names])
            continue
        original = python_views[projection.name]
        twin = OnDemandFeatureView(
            name=original.name,
            sources=[
                *original.source_request_sources.values(),
                *original.source_feature_view_projections.values(),
            ],
            schema=list(original.features),
            udf=request_features,
            udf_string="bench/naive_features.py:request_features",
            mode="pandas",
            description=f"pandas twin of {original.name}, for the naive benchmark reference",
        )
        twins.append(twin)
        features.append(twin[names])
    naive_service = FeatureService(
        name=f"{service_name}{NAIVE_SUFFIX}",
        features=features,
        description="naive reference: the model's features, on-demand views in pandas mode",
    )
    store.apply([*twins, naive_service])
    serving_config = repo_config_dict(settings)["online_store"]  # the real online store
    (repo_dir / "feature_store.yaml").write_text(
        yaml.safe_dump(_config(settings, registry, serving_config), sort_keys=False)
    )
    return NaiveFeatures(
        repo_dir=repo_dir,
        feature_service=naive_service.name,
        twins=[t.name for t in twins],
    )
