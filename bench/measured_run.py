"""One engine's command, measured with everything it runs on: shared by the benchmarks
that put DuckDB next to Spark (``bench/offline.py``, ``bench/feature_build.py``).

A Spark job's cost is not in its own process: the driver JVM is a child of the Python
process, and the executor JVMs are children of the standalone worker daemon, which
starts them for the application and stops them when it ends. So :func:`run_measured`
samples, every ``interval`` seconds, the command's process tree plus the processes the
worker (``executors_of``) started after the command did:

- **CPU** is the sum over every process seen of its own last-seen user + system time
  (the command's own is read exactly, from its zombie, before it is reaped), so a
  child reaped by its parent is not counted twice; what a process burns after its
  last sample is missed, at most ``interval`` seconds' worth, and so is a process
  that lives less than a second (the tree is looked up once a second);
- **peak memory** is the peak of the summed RSS over the samples, and never less than
  the command's own ``ru_maxrss`` (exact, for the command alone: a DuckDB run's figure
  is then its own high-water mark, as before);
- **wall time** runs until the command exits (imports, JVM start-up and shutdown
  included).

A run over ``timeout`` seconds or ``memory_cap`` bytes is killed (its whole process
group, the driver JVM included; the worker then reaps its executors) and reported as
``timeout`` or ``memory cap`` with what it had reached.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

GB = 1024**3
# Finding the tree scans all of /proc (~20 ms on a loaded machine), so it is done
# once a second; the members' own figures are read every interval. A process found
# late loses nothing of its CPU (a running total), only its first second of RSS.
RESCAN_SECONDS = 1.0


@dataclass(frozen=True)
class Measured:
    status: str  # ok, timeout, memory cap, failed
    seconds: float
    cpu_seconds: float
    peak_bytes: int
    returncode: int


def _own_cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _tree(roots: list[psutil.Process], skip: set[int]) -> list[psutil.Process]:
    """The roots and their descendants (one scan of /proc), less the pids in ``skip``."""
    children: dict[int, list[int]] = {}
    for process in psutil.process_iter(["ppid"]):
        children.setdefault(process.info["ppid"], []).append(process.pid)
    found, stack = [], [root.pid for root in roots]
    while stack:
        pid = stack.pop()
        if pid not in skip:
            found.append(pid)
        stack.extend(children.get(pid, []))
    out = []
    for pid in found:
        try:
            out.append(psutil.Process(pid))
        except psutil.Error:
            continue
    return out


def _exited(pid: int) -> bool:
    """Whether the child has exited, leaving it unreaped (a zombie we can still read)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def run_measured(
    argv: list[str],
    env: dict[str, str],
    log: Path,
    *,
    cwd: Path | None = None,
    stdout: Path | None = None,
    timeout: float = float("inf"),
    memory_cap: float = float("inf"),
    executors_of: psutil.Process | None = None,
    on_tick: Callable[[float, int], None] | None = None,
    interval: float = 0.2,
) -> Measured:
    """Run ``argv`` in its own session and measure it (see the module's docstring).
    Its stderr, and its stdout unless ``stdout`` names a file, are appended to ``log``;
    ``on_tick(elapsed, peak_bytes)`` is called after each sample."""
    # Executors already running belong to someone else (another application).
    others = {p.pid for p in _tree([executors_of], set())} if executors_of else set()
    started = time.perf_counter()
    with open(log, "a") as err, open(stdout or log, "a") as out:
        err.write(f"$ {' '.join(argv)}\n")
        err.flush()
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True
        )
    roots = [psutil.Process(process.pid)] + ([executors_of] if executors_of else [])
    skip = others | {executors_of.pid if executors_of else -1}
    members: list[psutil.Process] = []
    cpu: dict[tuple[int, float], float] = {}  # by (pid, start time): pids are reused
    status, peak, reaped, scanned = "ok", 0, False, -float("inf")
    try:
        while True:
            done = _exited(process.pid)
            if time.perf_counter() - scanned >= RESCAN_SECONDS:
                members, scanned = _tree(roots, skip), time.perf_counter()
            rss = 0
            for proc in members:
                try:
                    with proc.oneshot():
                        cpu[(proc.pid, proc.create_time())] = _own_cpu(proc)
                        rss += proc.memory_info().rss
                except psutil.Error:
                    continue
            peak = max(peak, rss)
            if done:
                break
            elapsed = time.perf_counter() - started
            killed = "timeout" if elapsed > timeout else "memory cap" if peak > memory_cap else None
            if killed:
                status = killed
                os.killpg(process.pid, signal.SIGKILL)
                break
            if on_tick:
                on_tick(elapsed, peak)
            time.sleep(interval)
        _, wait_status, usage = os.wait4(process.pid, 0)
        reaped = True
    finally:
        if not reaped:  # interrupted (Ctrl-C): do not leave the engine running
            try:
                os.killpg(process.pid, signal.SIGKILL)
                os.wait4(process.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(wait_status)
    if status == "ok" and process.returncode != 0:
        status = "failed"
    peak = max(peak, usage.ru_maxrss * 1024)  # Linux reports kilobytes
    return Measured(status, seconds, sum(cpu.values()), peak, process.returncode)


@dataclass(frozen=True)
class StandaloneSpark:
    master_url: str
    worker: psutil.Process  # the worker daemon: the executors are its children


@contextmanager
def standalone_spark(
    workdir: Path, cores: int | None = None, worker_memory: str = "3g"
) -> Iterator[StandaloneSpark]:
    """A real standalone master and one worker on loopback (the tests' cluster, started
    with Spark's own launcher), with all of this machine's cores; stopped afterwards."""
    from tests.integration.spark_cluster import LocalSparkCluster

    cluster = LocalSparkCluster(
        workdir, worker_cores=cores or os.cpu_count() or 2, worker_memory=worker_memory
    )
    try:
        cluster.start()
        yield StandaloneSpark(cluster.master_url, psutil.Process(cluster.processes[1].pid))
    finally:
        cluster.stop()
