"""The installed-packages hash a model records: kept between retrains, never stale."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from training import environment


def _uncached() -> str:
    return hashlib.sha256("\n".join(environment.installed_lock()).encode()).hexdigest()


def test_the_hash_follows_a_package_installed_or_removed_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    before = environment.lock_hash()
    assert before == _uncached() == environment.lock_hash()

    info = tmp_path / "feastline_probe-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: feastline-probe\nVersion: 1.0\n")
    installed = environment.lock_hash()
    assert installed == _uncached() != before
    assert "feastline-probe==1.0" in environment.installed_lock()

    (info / "METADATA").unlink()
    info.rmdir()
    assert environment.lock_hash() == _uncached() == before
