"""Serving CLI: ``python -m serving --help``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from feature_repo.settings import Settings
from feature_repo.structured_logging import configure_logging

console = Console()
errors = Console(stderr=True, soft_wrap=True)


def service_env(settings: Settings, workers: int | None = None) -> dict[str, str]:
    """The environment ``bentoml serve`` needs: the project's model store, no telemetry."""
    env = dict(os.environ)
    env["BENTOML_HOME"] = str(settings.bentoml_home)
    env["BENTOML_DO_NOT_TRACK"] = "True"
    env["FEASTLINE_DATA_DIR"] = str(settings.data_dir)
    if workers:
        env["FEASTLINE_SERVING_WORKERS"] = str(workers)
    return env


def serve_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "serving.service:FlightDelayService",
        "--host",
        host,
        "--port",
        str(port),
    ]


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from serving.champion import champion_tag

    tag = champion_tag(settings)  # refuse to start, with advice, when there is no model
    console.print(
        f"serving {tag} on http://{args.host}:{args.port} "
        f"(online store: {settings.online_store_kind})"
    )
    process = subprocess.run(
        serve_command(args.host, args.port), env=service_env(settings, args.workers), check=False
    )
    return process.returncode


def _cmd_batch(args: argparse.Namespace, settings: Settings) -> int:
    from serving.batch import score_file

    with console.status(f"scoring {args.input} with point-in-time features"):
        result = score_file(settings, args.input, args.output)
    console.print(
        f"batch: {result.rows:,} flights scored by {result.tag}, "
        f"{result.late_share:.1%} predicted late, {result.seconds:.1f}s -> {result.output}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving", description="Serving: the online service and batch scoring."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="start the BentoML service on the champion model")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--workers", type=int, default=None, help="worker processes (default 2)")
    p.set_defaults(func=_cmd_serve)
    p = sub.add_parser("batch", help="score a Parquet file of flights with offline features")
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    p.set_defaults(func=_cmd_batch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    settings = Settings.from_env()
    from serving.batch import BadBatchInput
    from serving.champion import NoChampion

    try:
        return args.func(args, settings)
    except NoChampion as err:
        errors.print(f"[red]error:[/red] {err}")
        return 3
    except (BadBatchInput, RuntimeError, ValueError) as err:
        errors.print(f"[red]error:[/red] {err}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
