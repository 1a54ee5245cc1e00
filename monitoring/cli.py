"""Monitoring CLI: ``python -m monitoring --help``.

Exit codes: 0 no policy breach, 3 the drift policy failed (so cron or CI can
act), 2 bad input (a missing, empty or corrupt profile, no common columns),
1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from feature_repo.settings import Settings
from feature_repo.structured_logging import configure_logging

if TYPE_CHECKING:
    from monitoring.alerts import AlertSink
    from monitoring.profiles import Profile

# Piped output (cron mail, CI logs) gets a wide table rather than rich's default 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("monitoring")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_DRIFT = 3


class BadInput(ValueError):
    """Input the user must fix; the message names the file."""


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in 0..1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in 0..1, got {text!r}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _names(paths: list[Path], limit: int = 3) -> str:
    shown = ", ".join(str(p) for p in paths[:limit])
    return shown + (f" (+{len(paths) - limit} more)" if len(paths) > limit else "")


def _sinks(args: argparse.Namespace) -> list[AlertSink]:
    from monitoring.alerts import JsonlSink, LogSink, WebhookSink

    sinks: list[AlertSink] = [LogSink()]
    if args.alert_jsonl:
        sinks.append(JsonlSink(args.alert_jsonl))
    if args.webhook:
        try:
            sinks.append(WebhookSink(args.webhook))
        except ValueError as err:
            raise BadInput(f"--webhook: {err}") from None
    return sinks


def _read_inputs(
    args: argparse.Namespace, progress: Progress
) -> tuple[Profile, Profile, list[Path]]:
    """The reference and the merged targets; bad files are named."""
    from monitoring.profiles import merge, profile_files, read_profile

    reference = read_profile(args.reference)
    if not reference.columns:
        raise BadInput(f"{args.reference}: reference profile has no columns")
    files = profile_files(args.target)
    task = progress.add_task("reading target profiles", total=len(files))
    targets = []
    for path in files:
        targets.append(read_profile(path))
        progress.advance(task)
    target = merge(targets)
    if not target.columns:
        raise BadInput(f"{_names(files)}: target profiles have no columns")
    return reference, target, files


def _cmd_compare(args: argparse.Namespace, settings: Settings) -> int:
    from monitoring.alerts import build_alert, dispatch
    from monitoring.drift import DriftInputError, DriftPolicy, compare
    from monitoring.layout import drift_dir
    from monitoring.report import (
        drift_table,
        render_html,
        summary_line,
        write_drift_json,
        write_html,
    )

    started = time.perf_counter()
    policy = DriftPolicy(
        psi_threshold=args.psi_threshold,
        js_threshold=args.js_threshold,
        max_drift_share=args.max_drift_share,
        critical=tuple(args.critical),
        hellinger=tuple(args.hellinger),
    )
    sinks = _sinks(args)
    out: Path = args.out or drift_dir(settings)
    with _progress() as progress:
        reference, target, files = _read_inputs(args, progress)
        task = progress.add_task("comparing columns", total=len(target.columns))
        try:
            result = compare(
                reference,
                target,
                policy,
                columns=args.columns or None,
                on_column=lambda _: progress.advance(task),
            )
        except DriftInputError as err:
            raise BadInput(f"{args.reference} vs {_names(files)}: {err}") from None
        sources = {"reference": str(args.reference), "targets": _names(files, limit=10)}
        html_path = out / "report.html"
        if args.no_html:
            # A report from an earlier run would contradict this run's drift.json.
            html_path.unlink(missing_ok=True)
        else:
            task = progress.add_task("plotting", total=len(result.columns))
            html = render_html(
                result,
                reference,
                target,
                sources=sources,
                on_column=lambda _: progress.advance(task),
            )
            write_html(html, html_path)
    model_tag = args.model_tag or reference.metadata.get("model_tag")
    json_path = write_drift_json(result, out / "drift.json", model_tag=model_tag, **sources)
    report = json_path if args.no_html else html_path
    console.print(drift_table(result, title="drift: reference vs target"))
    log.info(
        "drift compared",
        extra={
            "failed": result.failed,
            "drift_share": round(result.drift_share, 4),
            "drifted": [c.column for c in result.drifted],
            "json": str(json_path),
        },
    )
    if result.failed:
        alert = build_alert(
            result,
            model_tag=model_tag,
            reference=str(args.reference),
            targets=[str(f) for f in files],
            report=str(report),
        )
        for problem in dispatch(alert, sinks):
            errors.print(f"[yellow]warning:[/yellow] alert not delivered: {problem}")
    elapsed = time.perf_counter() - started
    console.print(f"{summary_line(result)}; report {report} ({elapsed:.1f}s)", soft_wrap=True)
    return EXIT_DRIFT if result.failed else EXIT_OK


def _cmd_profile(args: argparse.Namespace, settings: Settings) -> int:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from monitoring.profiles import ProfileBuilder, write_profile

    started = time.perf_counter()
    try:
        parquet = pq.ParquetFile(args.input)
    except FileNotFoundError:
        raise BadInput(f"{args.input}: input file not found") from None
    except (pa.ArrowException, OSError) as err:
        raise BadInput(f"{args.input}: not a readable Parquet file ({err})") from None
    # pandas stores a non-default index as a column; it is not data to profile.
    pandas_meta = parquet.schema_arrow.pandas_metadata or {}
    index = {c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)}
    names = [c for c in parquet.schema_arrow.names if c not in index]
    wanted = args.columns or [c for c in names if c not in set(args.exclude)]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise BadInput(f"{args.input}: no such columns: {', '.join(missing)}")
    time_col = args.time_column if args.time_column in names else None
    read = list(dict.fromkeys([*wanted, *([time_col] if time_col else [])]))
    builder = ProfileBuilder(metadata={"source": str(args.input)})
    spans: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    with _progress() as progress:
        task = progress.add_task(f"profiling {args.input.name}", total=parquet.metadata.num_rows)
        # Large batches: whylogs' cost is mostly per call, and memory stays bounded.
        for batch in parquet.iter_batches(batch_size=100_000, columns=read):
            frame = batch.to_pandas()
            if time_col:
                times = pd.to_datetime(frame[time_col], utc=True).dropna()
                if len(times):
                    spans.append((times.min(), times.max()))
            builder.add(frame[wanted])
            progress.advance(task, len(frame))
    if spans:
        start = min(s for s, _ in spans).to_pydatetime(warn=False)
        builder.set_window(start, max(e for _, e in spans).to_pydatetime(warn=False))
    profile = builder.snapshot()
    write_profile(profile, args.out)
    size = args.out.stat().st_size
    console.print(
        f"profile: {profile.rows:,} rows, {len(profile.columns)} columns -> {args.out} "
        f"({size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f}s"
    )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monitoring",
        description="Monitoring: whylogs profiles, drift comparison, reports and alerts.",
        epilog="exit codes: 0 ok, 1 error, 2 bad input, 3 drift policy failed",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "compare",
        help="compare target profiles (merged) with a reference profile",
        description="Per column: PSI, Jensen-Shannon distance and whylogs' own test. "
        "Writes drift.json and report.html; exits 3 when the drift policy fails.",
    )
    p.add_argument("--reference", type=Path, required=True, help="reference .bin profile")
    p.add_argument(
        "--target",
        type=Path,
        nargs="+",
        required=True,
        help="target .bin profiles, or folders of them; merged into one",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <data>/monitoring/drift)"
    )
    p.add_argument(
        "--max-drift-share",
        type=_share,
        default=0.3,
        help="fail above this share of drifted columns (default 0.3)",
    )
    p.add_argument(
        "--psi-threshold",
        type=_positive,
        default=0.2,
        help="a column drifts at PSI >= this (default 0.2)",
    )
    p.add_argument(
        "--js-threshold",
        type=_positive,
        default=0.1,
        help="... or at JS distance >= this (default 0.1)",
    )
    p.add_argument(
        "--critical", nargs="+", default=[], metavar="COLUMN", help="fail when any of these drifts"
    )
    p.add_argument(
        "--hellinger",
        nargs="+",
        default=[],
        metavar="COLUMN",
        help="use whylogs' Hellinger test for these numeric columns",
    )
    p.add_argument(
        "--columns", nargs="+", default=[], metavar="COLUMN", help="compare only these columns"
    )
    p.add_argument(
        "--alert-jsonl",
        type=Path,
        default=None,
        help="append an alert line here when the policy fails",
    )
    p.add_argument(
        "--webhook", default=None, help="POST the alert as JSON to this URL when the policy fails"
    )
    p.add_argument(
        "--model-tag",
        default=None,
        help="model tag for the alert (default: from the reference profile)",
    )
    p.add_argument("--no-html", action="store_true", help="skip the HTML report and its plots")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("profile", help="profile a Parquet file into a whylogs .bin")
    p.add_argument("--input", type=Path, required=True, help="Parquet file")
    p.add_argument("--out", type=Path, required=True, help="output .bin")
    p.add_argument("--columns", nargs="+", default=[], metavar="COLUMN", help="profile only these")
    p.add_argument("--exclude", nargs="+", default=[], metavar="COLUMN", help="leave these out")
    p.add_argument(
        "--time-column",
        default="event_timestamp",
        help="when present, its first and last value become the profile's window",
    )
    p.set_defaults(func=_cmd_profile)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # whylogs takes seconds to import: not for --help or a usage error.
    from monitoring.alerts import AlertError
    from monitoring.profiles import ProfileError

    configure_logging()
    settings = Settings.from_env()
    try:
        return args.func(args, settings)
    except (ProfileError, BadInput) as err:
        errors.print(f"[red]error:[/red] {err}")
        return EXIT_BAD_INPUT
    except (AlertError, RuntimeError, ValueError, OSError) as err:
        errors.print(f"[red]error:[/red] {err}")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
