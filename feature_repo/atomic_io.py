"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """Inode, size and modification time: a file replaced through :func:`atomic_path` (a
    new inode), or written in place, gets another one. None when it does not exist."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def write_with(target: Path, writer: Callable[[Path], Any]) -> None:
    with atomic_path(target) as tmp:
        writer(tmp)


def write_parquet(table: pa.Table, target: Path) -> None:
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def write_json(payload: Any, target: Path, *, indent: int | None = 2) -> None:
    """``indent=None`` writes one line, with json's C encoder: an indented dump runs the
    pure-Python one, ten times slower on a large document written every step."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(payload, indent=indent, sort_keys=True, default=str) + "\n")


def write_text(text: str, target: Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def append_json_line(payload: Any, target: Path) -> None:
    """Append one JSON line in one write, flushed to disk: an append-only log's entry is
    whole or absent, and lines from concurrent writers never interleave."""
    target.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(payload, sort_keys=True, default=str) + "\n"
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
