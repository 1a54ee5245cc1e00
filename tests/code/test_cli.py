"""Every pipeline is a small CLI with --help."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["feature_repo", "training"])
def test_help(package: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", package, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert f"python -m {package}" in result.stdout


def test_a_bad_date_is_refused_by_name() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "feature_repo", "ingest", "--through", "2013-13-01"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--through" in result.stderr and "2013-13-01" in result.stderr
