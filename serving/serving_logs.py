"""JSON log lines for the service's own loggers, beside BentoML's logging."""

from __future__ import annotations

import logging
import sys

from feature_repo.structured_logging import JsonFormatter


def configure_service_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("serving", "feature_repo", "monitoring"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
