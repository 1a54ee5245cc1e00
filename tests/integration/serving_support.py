"""Start the real service (`bentoml serve`) for integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from feature_repo.settings import Settings
from serving import process as service_process


@dataclass
class RunningService:
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_service(
    settings: Settings,
    port: int,
    log_path: Path,
    *,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
    ready_seconds: float = 180,
) -> Iterator[RunningService]:
    child = service_process.start(settings, port, log_path, workers=workers, extra_env=extra_env)
    url = f"http://127.0.0.1:{port}"
    try:
        service_process.wait_ready(url, child, ready_seconds, log_path)
        yield RunningService(url=url, log_path=log_path)
    finally:
        service_process.stop(child)
