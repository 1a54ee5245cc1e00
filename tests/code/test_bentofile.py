"""bentofile.yaml stays in step with the project: same requirements, every package the
service imports."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from tests.code.test_package_boundaries import ALLOWED

ROOT = Path(__file__).resolve().parents[2]


def _bentofile() -> dict:
    return yaml.safe_load((ROOT / "bentofile.yaml").read_text())


def test_the_bento_requires_what_the_project_requires() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _bentofile()["python"]["packages"] == project["dependencies"]


def test_the_bento_packs_every_package_the_service_imports() -> None:
    bentofile = _bentofile()
    assert bentofile["service"] == "serving.service:FlightDelayService"
    packed = {pattern.split("/")[0] for pattern in bentofile["include"]}
    assert packed == {"serving", *ALLOWED["serving"]}
    assert "feature_repo/feature_store.yaml" in bentofile["include"]


def test_the_container_image_binds_every_interface() -> None:
    # A local `bentoml serve` keeps loopback (tests/integration/test_bento.py).
    envs = {e["name"]: e["value"] for e in _bentofile()["envs"]}
    assert envs["FEASTLINE_SERVING_HOST"] == "0.0.0.0"
