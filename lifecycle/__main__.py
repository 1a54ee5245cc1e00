"""The continuous-training loop's CLI: ``python -m lifecycle --help``.

- ``tick``: one idempotent step at the clock's now (for cron or an Airflow task);
- ``simulate``: the loop on the simulated clock over a span of the bundled year;
- ``report``: the timeline report of what the loop did, from a data dir's records.

Exit codes of ``tick``: 0 done (or nothing to do), 1 a bad policy or input,
69 the online store is unavailable, 75 another tick or materialization holds
the lock (try again later).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from feature_repo.cli_support import iso_date, run_cli, stdout_console
from feature_repo.settings import Settings

console = stdout_console()


def _policy(args: argparse.Namespace) -> object:
    from lifecycle.policy import load_policy

    return load_policy(args.policy)


def _cmd_tick(args: argparse.Namespace, settings: Settings) -> int:
    from feature_repo.clock import NOW_ENV, Clock
    from lifecycle.controller import Controller

    policy = _policy(args)
    if args.now is not None:
        # Every library that asks the clock (rollout instants, monitoring) sees this now.
        os.environ[NOW_ENV] = args.now.isoformat()
    now = Clock(settings).now().instant
    result = Controller(settings, policy).tick(now)  # type: ignore[arg-type]
    if result.skipped:
        console.print(f"tick at {now.isoformat()}: already done (nothing to do)")
        return 0
    checked = "checked" if result.checked else "no check due"
    console.print(
        f"tick at {now.isoformat()}: {result.materialized_rows:,} feature rows materialized; "
        f"{checked}; {len(result.decisions)} decision(s)"
    )
    for decision in result.decisions:
        console.print(f"  {decision.action} {decision.tag or ''}: {decision.reason}")
    return 0


def _cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from lifecycle.policy import NAIVE_POLICY, load_policy
    from lifecycle.report import summary_table, write_report
    from lifecycle.simulate import simulate

    policy = load_policy(args.policy)
    baselines = {} if args.no_baseline else {"naive": load_policy(args.baseline or NAIVE_POLICY)}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[now]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=not console.is_terminal) as progress:
        task = progress.add_task("simulating", total=None, now="")

        def on_tick(done: int, total: int, tick: datetime) -> None:
            progress.update(task, completed=done, total=total, now=f"{tick:%Y-%m-%d %H:%M}")

        run = simulate(
            settings,
            policy,
            args.start,
            args.end,
            baselines=baselines,
            step=args.step,
            on_tick=on_tick,
            serve_url=args.serve_url,
            headers=_api_headers(),
        )
    summary = write_report(settings, run, args.report_dir)
    console.print(summary_table(summary))
    console.print(f"report: {summary['report']}")
    return 0


def _cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from lifecycle.report import summary_table, write_report

    summary = write_report(settings, None, args.report_dir)
    console.print(summary_table(summary))
    console.print(f"report: {summary['report']}")
    return 0


def _duration(text: str) -> timedelta:
    from feature_repo.clock import parse_duration

    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _api_headers() -> dict[str, str] | None:
    key = os.environ.get("FEASTLINE_API_KEY")
    return {"X-API-Key": key} if key else None


def _instant(text: str) -> datetime:
    from feature_repo.clock import parse_instant

    try:
        return parse_instant(text).astimezone(UTC)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lifecycle",
        description="The continuous-training loop: monitor, retrain, shadow, promote, roll back.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    policy_help = "the policy YAML (default conf/lifecycle/default.yaml)"

    p = sub.add_parser("tick", help="one idempotent step of the loop at the clock's now")
    p.add_argument("--policy", type=Path, default=None, help=policy_help)
    p.add_argument("--now", type=_instant, default=None, help="this instant instead of the clock")
    p.set_defaults(func=_cmd_tick)

    p = sub.add_parser("simulate", help="run the loop on the simulated clock, then report")
    p.add_argument("--start", type=iso_date, required=True, help="first UTC day served")
    p.add_argument("--end", type=iso_date, required=True, help="last UTC day served, inclusive")
    p.add_argument("--policy", type=Path, default=None, help=policy_help)
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="the baseline arm's policy (default conf/lifecycle/naive-monthly.yaml)",
    )
    p.add_argument("--no-baseline", action="store_true", help="no naive arm (static only)")
    p.add_argument(
        "--step",
        type=_duration,
        default="2h",
        help="the clock's tick (default 2h): the feature pipeline and the controller run at "
        "each, and the flights predicted before the next tick are scored at it",
    )
    p.add_argument(
        "--serve-url",
        default=None,
        help="send the flights to this running service (one worker) instead of scoring in "
        "process; it is told to write its logs (/flush) before each check",
    )
    p.add_argument(
        "--report-dir",
        type=Path,
        default=None,
        help="where the timeline report goes (default <data>/reports/lifecycle)",
    )
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("report", help="(re)write the timeline report from the loop's records")
    p.add_argument(
        "--report-dir",
        type=Path,
        default=None,
        help="where the report goes (default <data>/reports/lifecycle)",
    )
    p.set_defaults(func=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    from feature_repo.materialize import RunSkipped
    from feature_repo.run_lock import OnlineStoreUnavailable
    from lifecycle.policy import PolicyError

    return run_cli(
        build_parser(),
        argv,
        [
            (OnlineStoreUnavailable, 69),
            (RunSkipped, 75),
            ((PolicyError, RuntimeError, ValueError), 1),
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
