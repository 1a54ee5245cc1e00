"""The pipelines meet only in the feature store and the model registry: no package
imports a pipeline it must not know about (checked on the source, not at run time)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("feature_repo", "model_registry", "training", "serving", "monitoring")
# What each package may import from the others.
ALLOWED = {
    "feature_repo": set(),
    "model_registry": {"feature_repo"},
    "training": {"feature_repo", "model_registry", "monitoring"},
    "serving": {"feature_repo", "model_registry", "monitoring"},
    "monitoring": {"feature_repo", "model_registry"},
}


def imported_packages(package: str) -> dict[str, set[str]]:
    """Project packages imported anywhere in ``package`` (also inside functions)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in PACKAGES and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_what_it_may(package: str) -> None:
    imports = imported_packages(package)
    forbidden = {name: files for name, files in imports.items() if name not in ALLOWED[package]}
    assert not forbidden, f"{package} must not import {forbidden}"


def test_the_check_sees_imports_inside_functions() -> None:
    # serving imports monitoring only inside functions and classes; the walk must see it.
    assert "monitoring" in imported_packages("serving")
