"""Console and file logging: ours at INFO, libraries at WARNING, everything as JSON in a file."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from feature_repo.structured_logging import (
    LIBRARY_LOGGERS,
    OUR_LOGGERS,
    configure_logging,
    info_as_debug,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back for the other tests."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    levels = {name: logging.getLogger(name).level for name in (*OUR_LOGGERS, *LIBRARY_LOGGERS)}
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    root.handlers[:], root.level = saved
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(False)


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _log_everything() -> None:
    logging.getLogger("feature_repo.materialize").info("ours", extra={"rows": 3})
    logging.getLogger("training.train").debug("our detail")
    logging.getLogger("httpx").info("HTTP Request: POST /predict")
    logging.getLogger("feast.infra").warning("library warning")


def test_console_is_quiet_and_human_the_file_has_everything_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = configure_logging("feature_repo-materialize", tmp_path / "logs")
    _log_everything()
    err = capsys.readouterr().err
    assert err.splitlines() == ["ours rows=3", "warning: library warning"]
    assert path == tmp_path / "logs" / "feature_repo-materialize.jsonl"
    records = _records(path)
    assert [(r["level"], r["logger"], r["event"]) for r in records] == [
        ("INFO", "feature_repo.materialize", "ours"),
        ("DEBUG", "training.train", "our detail"),
        ("WARNING", "feast.infra", "library warning"),
    ]
    assert records[0]["rows"] == 3 and str(records[0]["ts"]).startswith("20")


@pytest.mark.parametrize(
    ("verbosity", "expected"),
    [
        (-1, ["warning: library warning"]),
        (1, ["ours rows=3", "debug: our detail", "warning: library warning"]),
        (
            2,
            [
                "ours rows=3",
                "debug: our detail",
                "HTTP Request: POST /predict",
                "warning: library warning",
            ],
        ),
    ],
)
def test_verbose_and_quiet(
    verbosity: int, expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(verbosity=verbosity)
    _log_everything()
    assert capsys.readouterr().err.splitlines() == expected


def test_json_on_the_console(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FEASTLINE_LOG_FORMAT", "json")
    configure_logging()
    _log_everything()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["ours", "library warning"]


def test_a_bad_log_format_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEASTLINE_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match=r"FEASTLINE_LOG_FORMAT.*'xml'"):
        configure_logging()


def test_routine_work_logs_at_debug_for_a_while(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = configure_logging("serving-demo", tmp_path)
    assert path is not None
    materialize = logging.getLogger("feature_repo.materialize")
    with info_as_debug("feature_repo.materialize"):
        materialize.info("materialization run", extra={"rows": 1})
        materialize.warning("a warning stays one")
    materialize.info("after the replay")
    assert capsys.readouterr().err.splitlines() == [
        "warning: a warning stays one",
        "after the replay",
    ]
    assert [r["level"] for r in _records(path)] == ["DEBUG", "WARNING", "INFO"]


def test_every_cli_takes_the_options_after_its_command(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FEASTLINE_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "monitoring", "overview", "-v", "--log-format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    logged = [json.loads(line) for line in result.stderr.splitlines()]
    assert {"level": "DEBUG", "event": "overview written"}.items() <= logged[-1].items()
    assert (tmp_path / "logs" / "monitoring-overview.jsonl").exists()
    assert "summary" in result.stdout
