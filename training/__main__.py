"""Training pipeline CLI: ``python -m training --help``."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

from feature_repo.settings import Settings
from feature_repo.structured_logging import configure_logging

console = Console()
errors = Console(stderr=True, soft_wrap=True)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def _cmd_build_dataset(args: argparse.Namespace, settings: Settings) -> int:
    from training.dataset import (
        build_training_set,
        default_output,
        null_counts,
        write_training_set,
    )

    if args.end < args.start:
        raise ValueError(f"--end {args.end} is before --start {args.start}")
    out = args.out or default_output(settings, args.start, args.end)
    with console.status(f"building point-in-time training set {args.start} .. {args.end}"):
        built = write_training_set(build_training_set(settings, args.start, args.end), out)
    manifest = built.manifest
    nulls = null_counts(built.frame, manifest["features"])
    table = Table(title="nulls per feature", show_edge=False)
    table.add_column("feature")
    table.add_column("nulls", justify="right")
    table.add_column("share", justify="right")
    for name, count in nulls.items():
        table.add_row(name, f"{count:,}", f"{count / max(1, manifest['rows']):.1%}")
    console.print(table)
    console.print(
        f"training set: {manifest['rows']:,} rows, positive rate {manifest['positive_rate']:.1%}, "
        f"{len(manifest['features'])} features, fingerprint {manifest['fingerprint'][:12]}, "
        f"{manifest['seconds']:.1f}s -> {out}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training", description="Training pipeline: point-in-time training sets."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build-dataset", help="build a point-in-time training set from Feast")
    p.add_argument("--start", type=_date, required=True, help="first UTC day (scheduled departure)")
    p.add_argument("--end", type=_date, required=True, help="last UTC day, inclusive")
    p.add_argument("--out", type=Path, default=None, help="output Parquet path")
    p.set_defaults(func=_cmd_build_dataset)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    settings = Settings.from_env()
    try:
        return args.func(args, settings)
    except (RuntimeError, ValueError) as err:
        errors.print(f"[red]error:[/red] {err}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
