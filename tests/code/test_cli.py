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


def test_ingest_through_takes_a_day_or_an_instant() -> None:
    from datetime import UTC, date, datetime

    from feature_repo.__main__ import build_parser
    from feature_repo.raw_layer import through_instant

    def through(text: str):
        return build_parser().parse_args(["ingest", "--through", text]).through

    assert through("2013-03-11") == date(2013, 3, 11)
    assert through_instant(through("2013-03-11")) == datetime(
        2013, 3, 11, 23, 59, 59, 999999, tzinfo=UTC
    )
    assert through("2013-03-11T12:15") == datetime(2013, 3, 11, 12, 15, tzinfo=UTC)
    local = through_instant(through("2013-03-11T08:15:00-04:00"))
    assert local == datetime(2013, 3, 11, 12, 15, tzinfo=UTC) and local.tzinfo == UTC
