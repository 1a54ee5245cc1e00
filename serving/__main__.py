"""Serving CLI: ``python -m serving --help``."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, timedelta
from pathlib import Path

from feature_repo.cli_support import iso_date, run_cli, stdout_console
from feature_repo.settings import Settings

console = stdout_console()


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from serving.champion import load_champion
    from serving.process import check_api_key, run_forwarding_signals, serve_command, service_env

    check_api_key()
    # Load the champion's file and score a probe row here, so that a missing or broken
    # artifact is one clear error now, not workers crashing and restarting forever.
    tag = load_champion(settings).tag
    console.print(
        f"serving {tag} on http://{args.host}:{args.port} "
        f"(online store: {settings.online_store_kind})"
    )
    return run_forwarding_signals(
        serve_command(args.host, args.port), env=service_env(settings, args.workers)
    )


def _cmd_batch(args: argparse.Namespace, settings: Settings) -> int:
    from serving.batch import score_file

    with console.status(f"scoring {args.input} with point-in-time features"):
        result = score_file(settings, args.input, args.output)
    console.print(
        f"batch: {result.rows:,} flights scored by {result.tag}, "
        f"{result.late_share:.1%} predicted late, {result.seconds:.1f}s -> {result.output}"
    )
    return 0


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from feature_repo.atomic_io import write_json
    from monitoring.layout import replay_summary_path
    from serving import process as service_process
    from serving.champion import champion_tag
    from serving.replay import ReplayStats, replay_days

    tag = champion_tag(settings)
    url = f"http://127.0.0.1:{args.port}"
    log_path = settings.data_dir / "logs" / "service.log"
    with console.status(f"starting the service on {url} ({tag})"):
        child = service_process.start(settings, args.port, log_path, workers=args.workers)
        try:
            startup = service_process.wait_ready(url, child, 300, log_path)
        except (RuntimeError, TimeoutError):
            service_process.stop(child)
            raise
    console.print(f"service ready in {startup:.1f}s (log: {log_path})")
    try:
        with Progress(
            TextColumn("{task.description:<6}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            days = progress.add_task("days", total=args.days)
            ticks = progress.add_task("ticks", total=None)

            def on_day(day: date, stats: ReplayStats) -> None:
                progress.advance(days)
                progress.console.print(f"{day}: {stats.summary()}")

            total = replay_days(
                settings,
                url,
                args.start,
                args.days,
                batch=args.batch,
                on_day=on_day,
                step=timedelta(minutes=args.tick_minutes),
                on_tick=lambda done, count: progress.update(ticks, completed=done, total=count),
            )
    finally:
        code = service_process.stop(child)
    console.print(f"replay: {total.summary()}")
    summary = {
        "model": tag,
        "first_day": args.start.isoformat(),
        "days": args.days,
        "batch": args.batch,
        **total.to_dict(),
        "service_log": str(log_path),
    }
    write_json(summary, replay_summary_path(settings))
    console.print(
        f"service stopped cleanly (exit code {code})"
        if code == 0
        else f"[yellow]service exited with code {code}[/yellow]"
    )
    return 0 if total.errors == 0 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving", description="Serving: the online service and batch scoring."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="start the BentoML service on the champion model")
    p.add_argument(
        "--host",
        default=os.environ.get("FEASTLINE_SERVING_HOST", "127.0.0.1"),
        help="bind address (default: FEASTLINE_SERVING_HOST, else loopback only)",
    )
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--workers", type=int, default=None, help="worker processes (default 2)")
    p.set_defaults(func=_cmd_serve)
    p = sub.add_parser("demo", help="start the service, replay scheduled days, print latency, stop")
    p.add_argument("--start", type=iso_date, required=True, help="first replayed day (UTC)")
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--batch", type=int, default=1, help="flights per request")
    p.add_argument(
        "--tick-minutes",
        type=int,
        default=60,
        help="how often the simulated clock advances and the online store is materialized",
    )
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--workers", type=int, default=None)
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("batch", help="score a Parquet file of flights with offline features")
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    p.set_defaults(func=_cmd_batch)
    return parser


def main(argv: list[str] | None = None) -> int:
    from serving.batch import BadBatchInput
    from serving.champion import NoChampion

    return run_cli(
        build_parser(), argv, [(NoChampion, 3), ((BadBatchInput, RuntimeError, ValueError), 1)]
    )


if __name__ == "__main__":
    sys.exit(main())
