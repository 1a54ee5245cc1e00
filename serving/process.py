"""Running the service as a child process: start, wait until ready, stop cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from feature_repo.settings import Settings


def service_env(
    settings: Settings, workers: int | None = None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """What ``bentoml serve`` needs: the project's model store and data, no telemetry."""
    env = dict(os.environ)
    env["BENTOML_HOME"] = str(settings.bentoml_home)
    env["BENTOML_DO_NOT_TRACK"] = "True"
    env["FEASTLINE_DATA_DIR"] = str(settings.data_dir)
    for name in ("REDIS_URL", "FEASTLINE_REDIS_TYPE", "FEASTLINE_REDIS_STARTUP_NODES"):
        env.pop(name, None)
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
        env["FEASTLINE_REDIS_TYPE"] = settings.redis_type
    if settings.redis_startup_nodes:
        env["FEASTLINE_REDIS_STARTUP_NODES"] = ",".join(settings.redis_startup_nodes)
    if workers:
        env["FEASTLINE_SERVING_WORKERS"] = str(workers)
    env.update(extra or {})
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


def start(
    settings: Settings,
    port: int,
    log_path: Path,
    host: str = "127.0.0.1",
    workers: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            serve_command(host, port),
            env=service_env(settings, workers, extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


# What BentoML logs when a worker's start-up raised. The server itself stays up and
# keeps restarting the worker, so without reading the log a caller waits out its timeout.
STARTUP_FAILED = b"Application startup failed"


def startup_error(log_path: Path) -> str | None:
    """The exception a worker's start-up died of, if the server's log shows one.

    A Python traceback ends with the exception's own line, the first line after
    ``Traceback`` that is neither indented nor one of BentoML's timestamped lines.
    """
    try:
        text = log_path.read_bytes()
    except FileNotFoundError:
        return None
    if STARTUP_FAILED not in text:
        return None
    lines = text[: text.index(STARTUP_FAILED)].decode(errors="replace").splitlines()
    for line in reversed(lines):
        if line and not line[0].isspace() and not line[:4].isdigit() and ":" in line:
            return line.strip()
    return "a worker failed to start"


def wait_ready(
    url: str, process: subprocess.Popen[bytes], seconds: float, log_path: Path | None = None
) -> float:
    """Seconds until ``/readyz`` answered 200.

    Raises ``RuntimeError`` as soon as the process exits or, given its ``log_path``,
    a worker dies during start-up (no model, a broken store); ``TimeoutError`` when
    time runs out.
    """
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with code {process.returncode} before it was ready")
        if log_path is not None and (error := startup_error(log_path)):
            raise RuntimeError(f"service failed to start: {error} (log: {log_path})")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return time.monotonic() - began
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"service at {url} was not ready after {seconds:.0f}s")


def stop(process: subprocess.Popen[bytes], seconds: float = 30) -> int:
    """SIGTERM the process group (the server and its workers), as Ctrl-C would; then wait."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return process.returncode
