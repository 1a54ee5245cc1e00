"""requirements.lock matches pyproject.toml: run `make lock` after changing a dependency."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)")


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if match := PIN.match(line):
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_every_dependency_is_pinned_with_hashes_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    for extra in ("dev", "spark"):  # the Makefile's LOCK_EXTRAS
        wanted += [Requirement(r) for r in project["optional-dependencies"][extra]]
    pins = locked()
    problems = []
    for requirement in wanted:
        version = pins.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name} is not in requirements.lock")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name}=={version} is outside {requirement.specifier}")
    assert not problems, "; ".join(problems) + " (run `make lock`)"
    text = (ROOT / "requirements.lock").read_text()
    # Every pinned package carries at least one hash, so `pip install` checks them all.
    blocks = re.split(r"\n(?=[A-Za-z0-9._-]+==)", text)
    assert all("--hash=sha256:" in block for block in blocks if PIN.match(block))
