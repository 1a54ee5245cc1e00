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


def check_api_key() -> None:
    """An empty ``FEASTLINE_API_KEY`` would silently turn authentication off: refuse it."""
    key = os.environ.get("FEASTLINE_API_KEY")
    if key is not None and not key.strip():
        raise ValueError("FEASTLINE_API_KEY is set but empty: set a key, or unset it")


PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies, even by SIGKILL.

    BentoML's workers run in their own process groups, so killing the server's
    group left them orphaned, still answering and holding the port. Each worker
    calls this at start-up; so does ``bentoml serve`` itself, started by the CLI.
    A no-op where prctl does not exist.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return
    if os.getppid() != parent or parent == 1:  # the parent died before the request took
        os.kill(os.getpid(), sig)


def run_forwarding_signals(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` in the foreground, forwarding SIGTERM, SIGINT and SIGHUP to it.

    The child dies with this process even on SIGKILL (:func:`die_with_parent`), so
    a killed CLI never leaves a server holding the port.
    """
    child = subprocess.Popen(command, env=env, preexec_fn=die_with_parent)
    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in forwarded}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
    # One client for every poll: each new one loads the CA bundle (~0.1 s of CPU here),
    # which, five times a second, took a third of a core from the service starting up.
    with httpx.Client(timeout=1) as client:
        while time.monotonic() - began < seconds:
            if process.poll() is not None:
                raise RuntimeError(
                    f"service exited with code {process.returncode} before it was ready"
                )
            if log_path is not None and (error := startup_error(log_path)):
                raise RuntimeError(f"service failed to start: {error} (log: {log_path})")
            try:
                if client.get(f"{url}/readyz").status_code == 200:
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
