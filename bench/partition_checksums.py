"""What checking feature partitions' checksums costs a full-year training-set build.

    .venv/bin/python bench/partition_checksums.py [--workdir DIR] [--keep]
        [--start 2013-01-01] [--end 2013-12-31]

A data directory below ``--workdir`` (a temporary one by default, removed at the
end unless ``--keep``; never ``./data``) is set up by ingesting through ``--end``
and ``apply`` (timed apart, not part of the result; one already ingested through
``--end`` is reused). The same training set is then built three times in this
process, with the partition checks off, on, off
(``build_training_set(verifier=...)``; off is a verifier that only lists the
files), so that the warm-up and the page cache favour neither side.

It reports each build's seconds, the files and bytes the checks hashed and the
seconds they took, and two ratios against the unchecked build of the same run:
the checks' own time, and the checked build's wall time minus the mean unchecked
one. Not run by the tests.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from feature_repo.partition_checksums import PartitionVerifier
from feature_repo.settings import Settings


class ListingOnly(PartitionVerifier):
    """The files a build reads, not checked: the unverified read."""

    def verify(self, paths: Iterable[Path]) -> None:
        self.verified.update(paths)


def set_up(settings: Settings, end: date) -> float:
    from feature_repo.pipeline import apply, ingest, raw_layer

    started = time.perf_counter()
    through = raw_layer(settings).watermark()
    if through is None or through < end:
        ingest(settings, end)
        apply(settings)
    return time.perf_counter() - started


def build(settings: Settings, start: date, end: date, verifier: PartitionVerifier) -> float:
    from feature_repo.store import open_store
    from training.dataset import build_training_set

    store = open_store(settings)
    started = time.perf_counter()
    built = build_training_set(settings, start, end, store=store, verifier=verifier)
    seconds = time.perf_counter() - started
    print(
        f"  {type(verifier).__name__:<18} {seconds:7.1f} s  {built.manifest['rows']:,} rows, "
        f"{len(verifier.verified)} partitions read",
        flush=True,
    )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2013, 1, 1))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2013, 12, 31))
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-checksums."))
    settings = Settings(data_dir=workdir / "data")
    try:
        print(f"setup (ingest through {args.end}, apply): {set_up(settings, args.end):.1f} s")
        off_first, on, off_last = ListingOnly(), PartitionVerifier(), ListingOnly()
        unchecked = [build(settings, args.start, args.end, off_first)]
        checked = build(settings, args.start, args.end, on)
        unchecked.append(build(settings, args.start, args.end, off_last))
        baseline = statistics.mean(unchecked)
        print()
        print("| what | value |")
        print("| --- | --- |")
        print(f"| unchecked build (mean of 2) | {baseline:.1f} s |")
        print(f"| checked build | {checked:.1f} s |")
        print(f"| partitions hashed | {len(on.verified)}, {on.bytes / 1e6:.1f} MB |")
        print(f"| hashing and checking | {on.seconds:.3f} s |")
        print(f"| checks / unchecked build | {on.seconds / baseline:.2%} |")
        print(f"| (checked - unchecked) / unchecked | {(checked - baseline) / baseline:+.2%} |")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
