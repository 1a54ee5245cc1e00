"""What every pipeline's CLI shares: argument types, and known errors as exit codes.

An error the user can act on (bad input, a missing prerequisite, an outage)
prints one line naming the problem and exits non-zero; only a bug shows a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import date

from rich.console import Console

from feature_repo.settings import Settings
from feature_repo.structured_logging import add_logging_options, configure_from_args

errors = Console(stderr=True, soft_wrap=True)


def stdout_console() -> Console:
    """Where a CLI prints its results. Piped (make, cron, CI), rich would assume 80
    columns and wrap every longer line: there a line stays whole, and tables get 120."""
    piped = not sys.stdout.isatty()
    return Console(width=120 if piped else None, soft_wrap=piped)


ExitCodes = Sequence[tuple[type[BaseException] | tuple[type[BaseException], ...], int]]


def iso_date(text: str) -> date:
    """argparse type for YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def run_cli(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    exit_codes: ExitCodes,
    settings_factory: Callable[[], Settings] = Settings.from_env,
) -> int:
    """Parse, set up logging and settings, run ``args.func``; map known errors to codes.

    ``exit_codes`` is checked in order, so list specific exceptions before general ones.
    """
    add_logging_options(parser)
    args = parser.parse_args(argv)
    settings = settings_factory()
    configure_from_args(args, settings.data_dir)
    try:
        return int(args.func(args, settings))
    except Exception as err:
        for kinds, code in exit_codes:
            if isinstance(err, kinds):
                errors.print(f"[red]error:[/red] {err}")
                return code
        if isinstance(err, OSError) and err.filename:
            # A read-only or full disk, a file where a folder should be: one line, the path.
            reason = err.strerror or type(err).__name__
            errors.print(f"[red]error:[/red] {reason}: {err.filename}")
            return 74  # EX_IOERR
        if type(err).__module__ == "feast.errors":
            # Feast's own "not found" and config errors are actionable, not bugs.
            errors.print(
                f"[red]error:[/red] {err} (has `python -m feature_repo apply` run "
                "against this data directory?)"
            )
            return 1
        raise
