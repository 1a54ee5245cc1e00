"""Start the real service (`python -m serving serve`) for integration tests and benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from feature_repo.settings import Settings


@dataclass
class RunningService:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_ready(url: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with code {process.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"service at {url} was not ready after {seconds}s")


def stop(process: subprocess.Popen[bytes], seconds: float = 30) -> int:
    """SIGTERM the whole process group (bentoml serve runs workers), like Ctrl-C would."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return process.returncode


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
    env = dict(os.environ)
    env.update(
        {
            "FEASTLINE_DATA_DIR": str(settings.data_dir),
            "BENTOML_HOME": str(settings.bentoml_home),
            "BENTOML_DO_NOT_TRACK": "True",
        }
    )
    env.pop("REDIS_URL", None)
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    env.update(extra_env or {})
    command = [
        sys.executable,
        "-m",
        "serving",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, ready_seconds)
        yield RunningService(url=url, process=process, log_path=log_path)
    finally:
        stop(process)
