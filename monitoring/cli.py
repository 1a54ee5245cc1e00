"""Monitoring CLI: ``python -m monitoring --help``.

Exit codes: 0 no policy breach, 3 a policy failed (drift, degraded performance
or training/serving skew, so cron or CI can act), 2 bad input (a missing, empty
or corrupt profile, no common columns, no predictions in the window, an unknown
model), 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from feature_repo.settings import Settings
from feature_repo.structured_logging import add_logging_options, configure_from_args

if TYPE_CHECKING:
    from rich.table import Table

    from monitoring.alerts import AlertSink
    from monitoring.calibration import Calibration
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


def _reference_path(args: argparse.Namespace, settings: Settings) -> Path:
    """``--reference``, else the model's reference profile from the registry.

    The registry's ``reference_profile`` wins; a model without one falls back to
    the conventional path beside the store (``monitoring/references/<tag>.bin``).
    """
    if args.reference is not None:
        return Path(args.reference)
    from monitoring.layout import reference_path
    from monitoring.registry import RegistryLookupError, model_info

    try:
        info = model_info(settings, args.model_tag)
    except RegistryLookupError as err:
        raise BadInput(f"no --reference given and {err}") from None
    args.model_tag = info.tag
    if info.reference_profile is not None:
        return info.reference_profile
    fallback = reference_path(settings, info.tag)
    if fallback.exists():
        return fallback
    raise BadInput(
        f"no --reference given and model {info.tag} has no reference profile "
        f"(metadata reference_profile is empty and {fallback} does not exist)"
    )


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
    try:
        policy = DriftPolicy(
            psi_threshold=args.psi_threshold,
            js_threshold=args.js_threshold,
            max_drift_share=args.max_drift_share,
            max_weighted_share=args.max_weighted_share,
            quantile=args.quantile,
            fail_on_prediction=not args.prediction_info_only,
            critical=tuple(args.critical),
            hellinger=tuple(args.hellinger),
            not_comparable=tuple(args.not_comparable),
        )
    except ValueError as err:
        raise BadInput(str(err)) from None
    sinks = _sinks(args)
    out: Path = args.out or drift_dir(settings)
    args.reference = _reference_path(args, settings)
    if not args.target:
        from monitoring.layout import profiles_dir

        args.target = [profiles_dir(settings)]
    with _progress() as progress:
        reference, target, files = _read_inputs(args, progress)
        calibration = _calibration(args, reference)
        columns = args.columns or None
        if args.exclude:
            # Columns that encode absolute time (the month) drift by construction.
            shared = columns or sorted(set(reference.columns) & set(target.columns))
            columns = [c for c in shared if c not in set(args.exclude)]
        task = progress.add_task("comparing columns", total=len(columns or target.columns))
        try:
            result = compare(
                reference,
                target,
                policy,
                columns=columns,
                on_column=lambda _: progress.advance(task),
                calibration=calibration,
            )
        except DriftInputError as err:
            raise BadInput(f"{args.reference} vs {_names(files)}: {err}") from None
        sources = {"reference": str(args.reference), "targets": _names(files, limit=10)}
        if calibration is not None:
            sources["calibration"] = str(args.calibration)
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
    limit = None if getattr(args, "verbose", 0) else 12
    console.print(drift_table(result, limit=limit))
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


def _calibration(args: argparse.Namespace, reference: Profile) -> Calibration | None:
    """``--calibration``, else the file beside the reference; None with ``--no-calibration``
    or when there is none (fixed thresholds then, and the report says so)."""
    from monitoring.calibration import CalibrationError, null_path, read_calibration

    if args.no_calibration:
        return None
    path = args.calibration or null_path(args.reference)
    if args.calibration is None and not path.exists():
        errors.print(
            f"[yellow]warning:[/yellow] no calibration beside {args.reference} "
            "(python -m monitoring calibrate): fixed thresholds"
        )
        return None
    try:
        calibration = read_calibration(path)
    except CalibrationError as err:
        raise BadInput(str(err)) from None
    if not calibration.matches(reference):
        raise BadInput(
            f"{path}: calibrated for another reference ({calibration.reference_rows:,} rows, "
            f"{calibration.reference_window[0]} .. {calibration.reference_window[1]}) than "
            f"{args.reference} ({reference.rows:,} rows); re-run python -m monitoring calibrate"
        )
    args.calibration = path
    return calibration


def _cmd_calibrate(args: argparse.Namespace, settings: Settings) -> int:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from monitoring.calibration import CalibrationError, calibrate_frame

    started = time.perf_counter()
    args.reference = _reference_path(args, settings)
    frames = []
    for path in args.input:
        try:
            names = pq.ParquetFile(path).schema_arrow.names
            frames.append(pd.read_parquet(path))
        except FileNotFoundError:
            raise BadInput(f"{path}: input file not found") from None
        except (pa.ArrowException, OSError) as err:
            raise BadInput(f"{path}: not a readable Parquet file ({err})") from None
        if args.time_column not in names:
            raise BadInput(f"{path}: no time column {args.time_column!r}")
    history = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    with console.status("scoring windows of history against the reference"):
        try:
            calibration, out = calibrate_frame(
                history,
                args.reference,
                time_column=args.time_column,
                lengths=args.lengths,
                out=args.out,
                period=_period(args.period) if args.period else None,
            )
        except CalibrationError as err:
            raise BadInput(f"{_names(args.input)}: {err}") from None
    uncalibrated = [c for c in read_profile_columns(args.reference) if c not in calibration.nulls]
    console.print(calibration_table(calibration))
    if uncalibrated:
        console.print(f"[dim]not in the history, so judged by fixed thresholds: "
                      f"{', '.join(uncalibrated)}[/dim]")  # fmt: skip
    windows = ", ".join(f"{n} x {d}-day" for d, n in calibration.windows.items())
    console.print(
        f"calibration: {windows} windows of {calibration.history[0]} .. "
        f"{calibration.history[1]} -> {out} ({time.perf_counter() - started:.1f}s)",
        soft_wrap=True,
    )
    return EXIT_OK


def _period(values: list[str]) -> tuple[date, date]:
    try:
        first, last = (date.fromisoformat(v) for v in values)
    except ValueError as err:
        raise BadInput(f"--period: expected two ISO dates: {err}") from None
    if last < first:
        raise BadInput(f"--period: LAST {last} is before FIRST {first}")
    return first, last


def read_profile_columns(path: Path) -> tuple[str, ...]:
    from monitoring.profiles import read_profile

    return read_profile(path).columns


def calibration_table(calibration: Calibration) -> Table:
    """Per column and window length: the PSI that is normal (median, p99, max)."""
    from rich.table import Table

    from monitoring.drift import _quantile

    table = Table(title="what history scores against the reference (PSI)", show_edge=False)
    table.add_column("column", overflow="fold")
    for length in calibration.lengths:
        table.add_column(f"{length}-day median / p99 / max", justify="right")
    for column in sorted(calibration.nulls):
        cells = []
        for length in calibration.lengths:
            sample = calibration.nulls[column].get(length, {}).get("psi") or []
            cells.append(
                f"{_quantile(sample, 0.5):.3f} / {_quantile(sample, 0.99):.3f} / {sample[-1]:.3f}"
                if sample
                else "-"
            )
        note = calibration.not_comparable.get(column)
        table.add_row(column + (" [dim](not comparable)[/dim]" if note else ""), *cells)
    return table


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


def _window(values: list[str]) -> tuple[datetime, datetime]:
    from feature_repo.clock import parse_instant

    try:
        start, end = (parse_instant(v) for v in values)
    except ValueError as err:
        raise BadInput(f"--window: expected ISO dates or datetimes: {err}") from None
    if end <= start:
        raise BadInput(f"--window: END {values[1]} must be after START {values[0]}")
    return start, end


def _duration(text: str) -> timedelta:
    from feature_repo.clock import parse_duration

    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _send_alert(alert: dict[str, object], sinks: list[AlertSink]) -> None:
    from monitoring.alerts import dispatch

    for problem in dispatch(alert, sinks):
        errors.print(f"[yellow]warning:[/yellow] alert not delivered: {problem}")


def _cmd_performance(args: argparse.Namespace, settings: Settings) -> int:
    from feature_repo.atomic_io import write_json
    from feature_repo.clock import Clock
    from monitoring import layout
    from monitoring.live import live_performance
    from monitoring.performance import (
        OutcomeSpec,
        PerformanceInputError,
        PerformancePolicy,
        build_alert,
    )
    from monitoring.report import performance_summary, performance_table

    start, end = _window(args.window)
    try:
        policy = PerformancePolicy(
            margin=args.margin,
            metrics=tuple(args.metrics),
            min_labels=args.min_labels,
            fail_on=args.fail_on,
        )
    except ValueError as err:
        raise BadInput(str(err)) from None
    sinks = _sinks(args)
    now = Clock(settings).now().instant
    try:
        result = live_performance(
            settings,
            (start, end),
            now,
            policy,
            every=args.every,
            model_tag=args.model_tag,
            threshold=args.threshold,
            outcome=OutcomeSpec(positive_above=args.late_minutes),
            predictions_dir=args.predictions_dir,
        )
    except PerformanceInputError as err:
        raise BadInput(str(err)) from None
    out: Path = args.out or layout.performance_dir(settings)
    json_path = out / "performance.json"
    write_json(result.to_dict(), json_path)
    if not args.json:
        console.print(performance_table(result))
        for note in result.notes:
            console.print(f"[dim]note: {note}[/dim]")
    log.info(
        "performance evaluated",
        extra={"failed": result.failed, "reasons": result.reasons, "json": str(json_path)},
    )
    if result.failed:
        _send_alert(build_alert(result, report=str(json_path)), sinks)
    _finish(args, result.to_dict(), f"{performance_summary(result)}; report {json_path}")
    return EXIT_DRIFT if result.failed else EXIT_OK


def _cmd_compare_models(args: argparse.Namespace, settings: Settings) -> int:
    from monitoring.compare_models import (
        ComparisonInputError,
        compare_models,
        default_window,
        write_comparison,
    )
    from monitoring.compare_models_report import comparison_summary, comparison_table

    window = _window(args.window) if args.window else default_window(settings)
    if args.min_labels < 1 or args.resamples < 100:
        raise BadInput("--min-labels must be >= 1 and --resamples >= 100")
    try:
        result = compare_models(
            settings,
            args.challenger,
            window,
            min_labels=args.min_labels,
            resamples=args.resamples,
            seed=args.seed,
            ci_unit=args.ci_unit,
            predictions_dir=args.predictions_dir,
        )
    except ComparisonInputError as err:
        raise BadInput(str(err)) from None
    json_path, html_path = write_comparison(settings, result, args.out)
    if not args.json:
        console.print(comparison_table(result))
        for note in result.notes:
            console.print(f"[dim]note: {note}[/dim]")
    log.info(
        "models compared",
        extra={"challenger": result.challenger, "verdict": result.verdict, "json": str(json_path)},
    )
    _finish(args, result.to_dict(), f"{comparison_summary(result)}; report {html_path}")
    return EXIT_DRIFT if result.failed else EXIT_OK


def _cmd_skew(args: argparse.Namespace, settings: Settings) -> int:
    from feature_repo.atomic_io import write_json
    from feature_repo.store import open_store
    from monitoring import layout
    from monitoring.registry import RegistryLookupError, model_info
    from monitoring.report import skew_summary, skew_table
    from monitoring.served_features import MODEL_TAG, newest_served_at, read_served_features
    from monitoring.skew import SkewInputError, build_alert, check

    sinks = _sinks(args)
    source: Path = args.served_dir or layout.served_features_dir(settings)
    if args.window:
        start, end = _window(args.window)
    else:
        newest = newest_served_at(source)
        if newest is None:
            raise BadInput(f"{source}: no served-features log (is FEASTLINE_PROFILING on?)")
        # The newest row included: the window is [newest - lookback, newest].
        end = newest + timedelta(microseconds=1)
        start = end - args.lookback
    served = read_served_features(source, start, end)
    tags = sorted(served[MODEL_TAG].astype(str).unique()) if MODEL_TAG in served else []
    services: dict[str, str] = {}
    inputs: dict[str, list[str]] = {}
    for tag in tags:
        try:
            info = model_info(settings, tag)
        except RegistryLookupError as err:
            if not args.feature_service:
                raise BadInput(f"{err}; pass --feature-service") from None
            services[tag] = args.feature_service
            continue
        service = args.feature_service or info.feature_service
        if not service:
            raise BadInput(f"model {tag} names no feature service; pass --feature-service")
        services[tag] = service
        if info.model_inputs:
            inputs[tag] = info.model_inputs
    with console.status(f"re-fetching up to {args.sample:,} served rows from the offline store"):
        try:
            result = check(
                served,
                open_store(settings),
                services,
                source=str(source),
                window=(start, end),
                inputs_of=inputs,
                sample=args.sample,
                seed=args.seed,
                max_mismatch_share=args.max_mismatch_share,
                rtol=args.tolerance,
            )
        except SkewInputError as err:
            raise BadInput(str(err)) from None
    out: Path = args.out or layout.skew_dir(settings)
    json_path = out / "skew.json"
    write_json(result.to_dict(), json_path)
    if not args.json:
        console.print(skew_table(result))
        if result.not_compared:
            skipped = ", ".join(result.not_compared)
            console.print(f"[dim]not model inputs, so not logged: {skipped}[/dim]")
    log.info(
        "skew checked",
        extra={"failed": result.failed, "mismatches": result.mismatches, "json": str(json_path)},
    )
    if result.failed:
        _send_alert(build_alert(result, report=str(json_path)), sinks)
    _finish(args, result.to_dict(), f"{skew_summary(result)}; report {json_path}")
    return EXIT_DRIFT if result.failed else EXIT_OK


def _finish(args: argparse.Namespace, payload: dict[str, object], summary: str) -> None:
    """The summary line, or with ``--json`` the whole result on stdout (for jq, CI)."""
    if args.json:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        console.print(summary, soft_wrap=True)


def _cmd_overview(args: argparse.Namespace, settings: Settings) -> int:
    from monitoring.overview import summary_lines, write_overview

    page, overview = write_overview(settings)
    if not args.quiet_summary:
        console.print("[bold]summary[/bold]")
        for line in summary_lines(settings, overview, page):
            console.print(line, soft_wrap=True, highlight=False)
    log.debug("overview written", extra={"path": str(page), "reports": len(overview.cards)})
    return EXIT_OK


def _data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the data directory (default: FEASTLINE_DATA_DIR, else ./data)",
    )


def _alert_options(parser: argparse.ArgumentParser) -> None:
    """Alert sinks and output format of the performance and skew checks."""
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON instead of the table"
    )
    parser.add_argument(
        "--alert-jsonl", type=Path, default=None, help="append an alert line here on failure"
    )
    parser.add_argument("--webhook", default=None, help="POST the alert as JSON to this URL")


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
    p.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="reference .bin profile (default: the reference profile of --model-tag, "
        "or of the champion, from the registry)",
    )
    p.add_argument(
        "--target",
        type=Path,
        nargs="+",
        default=[],
        help="target .bin profiles, or folders of them; merged into one "
        "(default: <data>/monitoring/profiles)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <data>/monitoring/drift)"
    )
    p.add_argument(
        "--max-drift-share",
        type=_share,
        default=0.3,
        help="fail above this share of drifted features (default 0.3)",
    )
    p.add_argument(
        "--psi-threshold",
        type=_positive,
        default=0.2,
        help="without a calibration, a column drifts at PSI >= this (default 0.2)",
    )
    p.add_argument(
        "--js-threshold",
        type=_positive,
        default=0.19,
        help="... or at JS distance >= this (default 0.19, which agrees with PSI 0.2: "
        "PSI ≈ 5.5·JS² for small shifts); both only without a calibration",
    )
    p.add_argument(
        "--quantile",
        type=_share,
        default=0.99,
        help="with a calibration, a column drifts above this quantile of the scores that "
        "windows of the same length in the reference period got (default 0.99)",
    )
    p.add_argument(
        "--max-weighted-share",
        type=_share,
        default=0.5,
        help="fail when drifted features carry more than this share of the model's "
        "permutation importance (default 0.5)",
    )
    p.add_argument(
        "--prediction-info-only",
        action="store_true",
        help="report prediction drift without failing the policy on it",
    )
    p.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help="the reference's calibration (default: <reference>.null.json beside it)",
    )
    p.add_argument("--no-calibration", action="store_true", help="judge by fixed thresholds only")
    p.add_argument(
        "--not-comparable",
        nargs="+",
        default=[],
        metavar="COLUMN",
        help="show these columns but leave them out of the verdict "
        "(calendar fields are found by the calibration)",
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
        "--exclude",
        nargs="+",
        default=[],
        metavar="COLUMN",
        help="leave these columns out (e.g. ones that encode the month)",
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
        help="model whose reference profile to use without --reference, and the tag "
        "for the alert (default: the champion; with --reference, the profile's own tag)",
    )
    p.add_argument("--no-html", action="store_true", help="skip the HTML report and its plots")
    _data_dir_option(p)
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser(
        "overview",
        help="write <data dir>/reports/index.html, linking every report; print a summary",
    )
    p.add_argument(
        "--no-summary",
        dest="quiet_summary",
        action="store_true",
        help="only write the page",
    )
    _data_dir_option(p)
    p.set_defaults(func=_cmd_overview)

    p = sub.add_parser(
        "calibrate",
        help="score windows of history against the reference: each column's null",
        description="Slides windows of each length (whole days, one day apart) over the "
        "history within the reference's window, scores each against the reference as "
        "compare does, and writes the per-column score distributions beside the reference "
        "(<reference>.null.json). Also finds calendar columns (one value per day).",
    )
    p.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="reference .bin profile (default: that of --model-tag, or of the champion)",
    )
    p.add_argument("--model-tag", default=None, help="model whose reference to calibrate")
    p.add_argument(
        "--input",
        type=Path,
        nargs="+",
        required=True,
        help="Parquet history with the reference's columns and a time column: the "
        "training set scored by the model, or the served-features log (--time-column "
        "served_at); columns it lacks keep fixed thresholds",
    )
    p.add_argument(
        "--time-column", default="event_timestamp", help="the rows' time (default event_timestamp)"
    )
    p.add_argument(
        "--period",
        nargs=2,
        default=None,
        metavar=("FIRST", "LAST"),
        help="days of history to use, inclusive (default: the reference's own window); "
        "e.g. served days known to be without real change",
    )
    p.add_argument(
        "--lengths",
        type=int,
        nargs="+",
        default=[1, 3, 7],
        metavar="DAYS",
        help="window lengths in days that compare will see (default 1 3 7)",
    )
    p.add_argument("--out", type=Path, default=None, help="output (default: <reference>.null.json)")
    _data_dir_option(p)
    p.set_defaults(func=_cmd_calibrate)

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

    p = sub.add_parser(
        "performance",
        help="delayed-label performance of logged predictions against the model's validation",
        description="Joins the prediction log with the outcomes knowable at the clock's now "
        "(label: arr_delay > --late-minutes) and reports ROC-AUC, precision and recall "
        "per window; exits 3 when a metric falls more than --margin below validation.",
    )
    p.add_argument(
        "--window",
        nargs=2,
        required=True,
        metavar=("START", "END"),
        help="predictions made in [START, END), ISO dates or datetimes (UTC unless offset)",
    )
    p.add_argument("--every", type=_duration, default="1d", help="row per window (default 1d)")
    p.add_argument("--model-tag", default=None, help="only this model's predictions")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="decision threshold (default: the model's, from the registry)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=0.05,
        help="degraded when a metric is this far below validation (default 0.05)",
    )
    p.add_argument(
        "--metrics",
        nargs="+",
        default=["roc_auc", "precision", "recall"],
        choices=["roc_auc", "precision", "recall"],
        help="metrics the verdict uses (default: all three)",
    )
    p.add_argument(
        "--min-labels",
        type=int,
        default=200,
        help="judge only windows with at least this many outcomes (default 200)",
    )
    p.add_argument(
        "--fail-on",
        choices=["overall", "any"],
        default="overall",
        help="fail on the whole window only (default), or also on any judged window",
    )
    p.add_argument(
        "--late-minutes",
        type=float,
        default=15.0,
        help="a flight is late when it arrives more than this late (default 15, as trained)",
    )
    p.add_argument(
        "--predictions-dir",
        type=Path,
        default=None,
        help="prediction log (default: <data>/monitoring/predictions)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: <data>/monitoring/performance)",
    )
    _alert_options(p)
    _data_dir_option(p)
    p.set_defaults(func=_cmd_performance)

    p = sub.add_parser(
        "compare-models",
        help="champion vs challenger on the same live flights, with paired 95%% CIs",
        description="Joins both models' logged predictions on the flights both scored with "
        "the outcomes knowable at the clock's now; ROC-AUC, log loss and Brier per model, "
        "overall, per carrier and origin and per day, and the paired difference (for ROC-AUC "
        "a CI over days, see --ci-unit; a seeded paired bootstrap for the others). Writes "
        "compare_models.json and "
        ".html; exits 3 when the challenger is worse (ROC-AUC CI below zero).",
    )
    p.add_argument("--challenger", required=True, help="the challenger's tag (or bare version)")
    p.add_argument(
        "--window",
        nargs=2,
        default=None,
        metavar=("START", "END"),
        help="predictions made in [START, END) (default: the 30 days before the clock's now)",
    )
    p.add_argument(
        "--min-labels",
        type=int,
        default=200,
        help="a verdict (overall, per slice or day) needs this many labelled flights (default 200)",
    )
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument(
        "--ci-unit",
        choices=("day", "flight"),
        default="day",
        help="ROC-AUC's CI: day (a jackknife over 24-hour blocks, for flights that share a "
        "day's weather; needs 3 days) or flight (DeLong's, flights independent) (default day)",
    )
    p.add_argument(
        "--predictions-dir",
        type=Path,
        default=None,
        help="prediction log (default: <data>/monitoring/predictions)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: <data>/monitoring/compare_models)",
    )
    p.add_argument(
        "--json", action="store_true", help="print the result as JSON instead of the table"
    )
    _data_dir_option(p)
    p.set_defaults(func=_cmd_compare_models)

    p = sub.add_parser(
        "skew",
        help="re-fetch served rows from the offline store and count values that differ",
        description="Samples the served-features log, asks Feast's offline store for the same "
        "feature service at each row's served_at (strict as-of), and compares value by value; "
        "exits 3 when the share of differing values exceeds --max-mismatch-share.",
    )
    p.add_argument("--sample", type=int, default=500, help="served rows to check (default 500)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument(
        "--window",
        nargs=2,
        default=None,
        metavar=("START", "END"),
        help="rows served in [START, END) (default: --lookback before the newest row)",
    )
    p.add_argument(
        "--lookback", type=_duration, default="1d", help="default window length (default 1d)"
    )
    p.add_argument(
        "--served-dir",
        type=Path,
        default=None,
        help="served-features log (default: <data>/monitoring/served_features)",
    )
    p.add_argument(
        "--feature-service",
        default=None,
        help="feature service to re-fetch (default: each model's, from the registry)",
    )
    p.add_argument(
        "--max-mismatch-share",
        type=_share,
        default=0.0,
        help="fail when more than this share of values differ (default 0: any)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-9,
        help="relative tolerance for numbers (default 1e-9)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <data>/monitoring/skew)"
    )
    _alert_options(p)
    _data_dir_option(p)
    p.set_defaults(func=_cmd_skew)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    add_logging_options(parser)
    args = parser.parse_args(argv)
    # whylogs takes seconds to import: not for --help or a usage error.
    from monitoring.alerts import AlertError
    from monitoring.profiles import ProfileError

    data_dir = getattr(args, "data_dir", None)
    settings = Settings.from_env(data_dir=data_dir) if data_dir else Settings.from_env()
    configure_from_args(args, settings.data_dir)
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
