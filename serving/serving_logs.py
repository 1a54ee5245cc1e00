"""The service's own log records: JSON lines in their own file, apart from BentoML's text.

``bentoml serve`` writes its text log to stdout/stderr (``data/logs/service.log``
under ``python -m serving demo``). Our loggers write JSON lines to
``<data dir>/logs/service.jsonl`` instead, so neither file mixes two formats; their
warnings are also written to stderr as text, where whoever reads the server's log
sees them.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from feature_repo.structured_logging import OUR_LOGGERS, json_formatter

SERVICE_LOG_NAME = "service.jsonl"


def configure_service_logging(data_dir: Path) -> Path:
    """Route our loggers to the JSON file (every worker appends to the same one)."""
    logs_dir = data_dir / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    path = logs_dir / SERVICE_LOG_NAME
    as_json = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    as_json.setFormatter(json_formatter())
    as_text = logging.StreamHandler(sys.stderr)
    as_text.setLevel(logging.WARNING)
    as_text.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] [%(name)s] %(message)s"))
    for name in OUR_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [as_json, as_text]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return path
