"""Logging for every pipeline: short human lines on the console, JSON lines in a file.

- Console (stderr): our loggers at INFO (``-v`` DEBUG, ``-q`` WARNING, ``-qq`` ERROR),
  libraries (httpx, feast, bentoml, ...) at WARNING (``-vv`` INFO), rendered by rich.
  ``--log-format json`` or ``FEASTLINE_LOG_FORMAT=json`` prints JSON lines instead.
- File: every record of ours down to DEBUG, and the libraries' warnings, as JSON lines
  in ``<data dir>/logs/<command>.jsonl`` (python-json-logger), for grep or a log shipper.

Results people read (tables, summaries, progress bars) go to stdout through rich,
not through logging.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from rich.console import Console
from rich.text import Text

OUR_LOGGERS = ("feature_repo", "training", "serving", "monitoring", "model_registry")
# Chatty at INFO (httpx logs every request); each also gets WARNING explicitly, since
# some set their own level when imported.
LIBRARY_LOGGERS = (
    "httpx",
    "httpcore",
    "urllib3",
    "feast",
    "bentoml",
    "whylogs",
    "apscheduler",
    "numexpr",
    "asyncio",
    "filelock",
    "matplotlib",
    "PIL",
    "py4j",
)
LOG_FORMATS = ("human", "json")
_EXTRA_SKIP = {*RESERVED_ATTRS, "taskName", "message", "color_message"}


def json_formatter() -> logging.Formatter:
    """One JSON object per line: ts, level, logger, event, then the record's ``extra``."""
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger", "message": "event"},
        timestamp="ts",
    )


class HumanFormatter(logging.Formatter):
    """The message, then the record's ``extra`` as short ``key=value`` pairs."""

    def __init__(self, max_value_chars: int = 60, max_line_chars: int = 160) -> None:
        super().__init__()
        self.max_value_chars = max_value_chars
        self.max_line_chars = max_line_chars

    def format(self, record: logging.LogRecord) -> str:
        pairs = [
            f"{key}={self._short(value)}"
            for key, value in vars(record).items()
            if key not in _EXTRA_SKIP and not key.startswith("_")
        ]
        line = " ".join([record.getMessage(), *pairs])
        if len(line) > self.max_line_chars:  # the JSON file has it whole
            line = line[: self.max_line_chars - 1] + "…"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line

    def _short(self, value: Any) -> str:
        text = str(value)
        limit = self.max_value_chars
        return text if len(text) <= limit else text[: limit - 1] + "…"


class ConsoleHandler(logging.Handler):
    """One line per record through rich: the message, prefixed by its level unless INFO.

    Never wrapped by rich (a terminal wraps it; a pipe keeps it one line).
    """

    STYLES: ClassVar[dict[int, str]] = {
        logging.DEBUG: "dim",
        logging.WARNING: "yellow",
        logging.ERROR: "red",
    }

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno != logging.INFO:
                text = f"{record.levelname.lower()}: {text}"
            style = self.STYLES.get(min(record.levelno, logging.ERROR), "")
            self.console.print(Text(text, style=style), soft_wrap=True, highlight=False)
        except Exception:
            self.handleError(record)


def add_logging_options(parser: argparse.ArgumentParser) -> None:
    """``-v``, ``-q`` and ``--log-format`` on every (sub)command that runs something.

    They go on the innermost parsers, so that they follow the command as people type
    them (``python -m feature_repo materialize -v``); each also learns its command name
    for the log file (``feature_repo-materialize``).
    """
    subcommands = [
        action
        for action in parser._actions  # argparse has no public way to list subparsers
        if isinstance(action, argparse._SubParsersAction)
    ]
    if subcommands:
        for action in subcommands:
            for subparser in action.choices.values():
                add_logging_options(subparser)
        return
    words = parser.prog.split()
    command = "-".join(words[words.index("-m") + 1 :] if "-m" in words else words)
    parser.set_defaults(log_command=command)
    group = parser.add_argument_group("logging")
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more console output: -v our debug lines, -vv also the libraries' info lines",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=0,
        help="less console output: -q warnings only, -qq errors only",
    )
    group.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=None,
        help="console log format (default: $FEASTLINE_LOG_FORMAT, else human); "
        "the JSON file under <data dir>/logs/ is written either way",
    )


def console_level(verbosity: int) -> int:
    """``verbosity`` is the count of -v minus the count of -q."""
    if verbosity >= 1:
        return logging.DEBUG
    return {0: logging.INFO, -1: logging.WARNING}.get(verbosity, logging.ERROR)


def configure_from_args(args: argparse.Namespace, data_dir: Path | None) -> Path | None:
    """:func:`configure_logging` from the options :func:`add_logging_options` added."""
    return configure_logging(
        getattr(args, "log_command", None),
        data_dir / "logs" if data_dir is not None else None,
        getattr(args, "verbose", 0) - getattr(args, "quiet", 0),
        getattr(args, "log_format", None),
    )


def configure_logging(
    command: str | None = None,
    logs_dir: Path | None = None,
    verbosity: int = 0,
    log_format: str | None = None,
) -> Path | None:
    """Set up the console and, given ``command`` and ``logs_dir``, the JSON file.

    Returns the JSON file's path, or None when there is none (no data dir, or it is
    not writable: logging must never stop a pipeline).
    """
    log_format = (log_format or os.environ.get("FEASTLINE_LOG_FORMAT") or "human").lower()
    if log_format not in LOG_FORMATS:
        raise ValueError(f"FEASTLINE_LOG_FORMAT must be one of {LOG_FORMATS}, got {log_format!r}")
    if level_name := os.environ.get("FEASTLINE_LOG_LEVEL"):
        level = logging.getLevelName(level_name.upper())
        if not isinstance(level, int):
            raise ValueError(f"FEASTLINE_LOG_LEVEL {level_name!r} is not a logging level")
    else:
        level = console_level(verbosity)

    console_handler: logging.Handler
    if log_format == "json":
        console_handler = logging.StreamHandler()
        console_handler.setFormatter(json_formatter())
    else:
        console_handler = ConsoleHandler(Console(stderr=True))
        console_handler.setFormatter(HumanFormatter())
    console_handler.setLevel(level)
    if verbosity < 1:
        # Python warnings (deprecations in libraries) are for developers: file only.
        console_handler.addFilter(lambda record: record.name != "py.warnings")
    handlers: list[logging.Handler] = [console_handler]

    path = None
    if command and logs_dir is not None:
        try:
            logs_dir.mkdir(parents=True, exist_ok=True)
            path = logs_dir / f"{command}.jsonl"
            # Reopens the file when logrotate moves it.
            file_handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
        except OSError:
            path = None
        else:
            file_handler.setFormatter(json_formatter())
            file_handler.setLevel(logging.DEBUG)
            handlers.append(file_handler)

    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        root.addHandler(handler)
    library_level = logging.INFO if verbosity >= 2 else logging.WARNING
    root.setLevel(library_level)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    return path


class _AtDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


@contextmanager
def info_as_debug(*logger_names: str) -> Iterator[None]:
    """Log these loggers' INFO records at DEBUG for a while: routine work repeated many
    times (a materialization per replayed tick) belongs in the file, not on the console.

    A logger's filters see only the records created at that very logger, so name
    each module, not a parent.
    """
    loggers = [logging.getLogger(name) for name in logger_names]
    demote = _AtDebug()
    for logger in loggers:
        logger.addFilter(demote)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(demote)
