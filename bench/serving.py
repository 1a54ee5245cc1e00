"""Serving latency and throughput: our service (alone, with a shadow, with a canary) vs a naive
BentoML service vs the in-process floor.

    .venv/bin/python bench/serving.py [--redis-url redis://127.0.0.1:6379/10] [--rounds 3]
        [--sizes 1,50] [--concurrency 1,8,32] [--requests 2000] [--seconds 4] [--markdown FILE]

Needs a data directory with features and a champion model (``make run``;
``FEASTLINE_DATA_DIR`` picks another one). Everything runs on a scratch copy
of it (without its monitoring logs), so the bench's traffic never lands in the
real served-data logs or materialization state. ``--redis-url`` names a Redis
database the benchmark owns: it is flushed, materialized through ``--now`` and
flushed again at the end. Three targets, on this machine, in this run:

- **(a) ours**: ``serving.service`` under ``bentoml serve`` (``serving.process.start``),
  with its default workers, threads and monitoring hooks, on the Redis online store;
- **(b) naive**: ``bench/naive_service.py``: default ``@bentoml.service``,
  ``get_online_features(...).to_df()`` with pandas-mode on-demand views
  (``bench/naive_features.py``, registered in a scratch copy of the registry),
  and the registered Pipeline's ``predict_proba`` on the DataFrame. It runs
  with one OpenMP thread, as ours does, or its latency would be mostly OpenMP
  fork-joins on this machine (``--naive-default-openmp`` shows that);
- **(a') shadow** and **(a") canary**: (a) again, on the same data and online
  store, while a challenger runs beside the champion (``python -m training
  models rollout``): in shadow (every flight scored by both, the champion
  answers; both probabilities logged) and as a ``--canary-percent`` canary
  (every flight still scored by both; the hash-picked share answered by the
  challenger). The challenger is the champion's pipeline saved again as a
  candidate: a model of the same size, so the rows price the rollout itself.
  Each runs on its own copy of the registry folder (the rollout state lives
  there), sharing the stored models;
- **(c) floor**: :meth:`serving.predictor.Predictor.score` in this process,
  the service's own work (Feast ``get_online_features`` + the model) without
  HTTP, BentoML or request validation; concurrency is threads in one process.

Traffic is the schedule of ``--now``'s day (the flights a replay sends), in
requests of 1 and 50 flights, driven closed-loop at each concurrency by a small
asyncio HTTP/1.1 client on keep-alive loopback connections. The client is raw
sockets rather than httpx because it shares the 2 cores with the servers: every
millisecond it spends per request is taken from the server being measured.
Every cell is bounded by ``--requests`` and ``--seconds``, and every request by
a timeout. Responses are checked after each cell (status 200, one prediction
per flight); anything else is an error.

Besides latency and throughput, each cell records the CPU time the target used
per request (the server's process tree from ``/proc``; this process for the
floor). Latency swings with whatever else the shared machine runs; CPU per
request much less, so it is the steadier measure of the work a request costs.
For (a) at one flight and concurrency 1, the service's own ``/metrics``
histograms split the time between Feast and the model.

The machine is shared and noisy, so cells are interleaved (for each load: a,
b, then c) and each is run ``--rounds`` times; the table shows the median of
the rounds, and every ratio compares numbers taken seconds apart in the same
run. Not run by the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
# Python puts this script's folder first on sys.path, where this very file would
# shadow the ``serving`` package; the project root must come before it.
sys.path.insert(0, str(BENCH_DIR.parent))

from feature_repo.settings import Settings  # noqa: E402
from serving import process as service_process  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 180)

TARGETS = ("ours", "shadow", "canary", "naive", "floor")
LABELS = {
    "ours": "(a) ours",
    "shadow": "(a') shadow",
    "canary": '(a") canary',
    "naive": "(b) naive",
    "floor": "(c) floor",
}
OURS = ("ours", "shadow", "canary")  # our service, without and with a challenger
# Issue 13: a shadow may cost at most this much on single-flight p50.
TARGET_SHADOW_P50_RATIO = 1.25
REQUEST_TIMEOUT = 30.0
# Targets of issue 5, acceptance item 3 (single-flight, on this 2-core machine).
TARGET_P50_MS = 3.0
TARGET_P99_MS = 8.0
TARGET_SPEEDUP = 5.0


@dataclass
class Cell:
    """One run of one target at one load."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    cpu_seconds: float = float("nan")  # the target's own CPU time over the cell
    first_error: str = ""

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else float("nan")

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds / self.requests * 1000 if self.requests else float("nan")


@dataclass
class Summary:
    p50: float
    p99: float
    rate: float
    cpu_ms: float
    requests: int
    errors: int
    first_error: str

    @classmethod
    def of(cls, cells: Sequence[Cell]) -> Summary:
        return cls(
            p50=statistics.median(c.percentile(50) for c in cells),
            p99=statistics.median(c.percentile(99) for c in cells),
            rate=statistics.median(c.rate for c in cells),
            cpu_ms=statistics.median(c.cpu_ms for c in cells),
            requests=sum(c.requests for c in cells),
            errors=sum(c.errors for c in cells),
            first_error=next((c.first_error for c in cells if c.first_error), ""),
        )


# -- the load generator --------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection; just enough protocol for uvicorn's replies."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            sock = self._writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._reader, self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def send(self, request: bytes) -> tuple[int, bytes]:
        reader, writer = await self._open()
        writer.write(request)
        status_line = await reader.readline()
        if not status_line:
            self.close()
            raise ConnectionError("server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            parts = []
            while size := int((await reader.readline()).split(b";")[0], 16):
                parts.append(await reader.readexactly(size))
                await reader.readline()
            await reader.readline()
            body = b"".join(parts)
        else:
            body = await reader.readexactly(length)
        if close:
            self.close()
        return status, body


def http_request(port: int, body: bytes, headers: dict[str, str]) -> bytes:
    head = [
        "POST /predict HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def expected_predictions(body: bytes, flights: int) -> str:
    """'' when the reply holds one prediction per flight, else what is wrong."""
    try:
        predictions = json.loads(body)["predictions"]
    except (ValueError, KeyError, TypeError) as err:
        return f"unreadable reply ({err}): {body[:200]!r}"
    if len(predictions) != flights:
        return f"{len(predictions)} predictions for {flights} flights"
    return ""


async def drive_http(
    port: int,
    requests: Sequence[bytes],
    flights: int,
    concurrency: int,
    max_requests: int,
    seconds: float,
) -> Cell:
    cell = Cell()
    jobs = itertools.count()
    replies: list[tuple[int, bytes]] = []
    connections = [Connection("127.0.0.1", port) for _ in range(concurrency)]
    began = time.perf_counter()
    deadline = began + seconds

    async def worker(connection: Connection) -> None:
        # One event loop thread: next() on the shared counter needs no lock.
        for i in jobs:
            if i >= max_requests or time.perf_counter() > deadline:
                return
            sent = time.perf_counter()
            try:
                reply = await asyncio.wait_for(
                    connection.send(requests[i % len(requests)]), REQUEST_TIMEOUT
                )
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as err:
                connection.close()
                cell.errors += 1
                cell.first_error = cell.first_error or f"{type(err).__name__}: {err}"
                continue
            cell.latencies_ms.append((time.perf_counter() - sent) * 1000)
            replies.append(reply)

    try:
        await asyncio.gather(*(worker(c) for c in connections))
    finally:
        cell.seconds = time.perf_counter() - began
        for connection in connections:
            connection.close()
    # Checked after the clock stops, so parsing replies does not slow the client down.
    for status, body in replies:
        problem = (
            f"HTTP {status}: {body[:200]!r}"
            if status != 200
            else expected_predictions(body, flights)
        )
        if problem:
            cell.errors += 1
            cell.first_error = cell.first_error or problem
    return cell


def run_loop(coroutine: Any) -> Any:
    """uvloop when installed (BentoML brings it): less client CPU per request."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def drive_in_process(
    score: Callable[[Any], Any],
    batches: Sequence[Any],
    concurrency: int,
    max_requests: int,
    seconds: float,
) -> Cell:
    """The floor: the same closed loop, with threads calling ``score`` directly."""
    cell = Cell()
    jobs = itertools.count()
    lock = threading.Lock()
    began = time.perf_counter()
    deadline = began + seconds

    def worker() -> None:
        for i in jobs:  # itertools.count is safe to share: next() runs under the GIL
            if i >= max_requests or time.perf_counter() > deadline:
                return
            sent = time.perf_counter()
            try:
                score(batches[i % len(batches)])
            except Exception as err:  # counted and shown, like an HTTP error
                with lock:
                    cell.errors += 1
                    cell.first_error = cell.first_error or f"{type(err).__name__}: {err}"
                continue
            cell.latencies_ms.append((time.perf_counter() - sent) * 1000)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + REQUEST_TIMEOUT)
    cell.seconds = time.perf_counter() - began
    return cell


# -- the services --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]
    startup_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def running(
    name: str, start: Callable[[int, Path], subprocess.Popen[bytes]], logs: Path
) -> Iterator[Service]:
    port = free_port()
    log_path = logs / f"{name}.log"
    child = start(port, log_path)
    service = Service(name=name, port=port, log_path=log_path, process=child)
    try:
        try:
            service.startup_seconds = service_process.wait_ready(service.url, child, 300, log_path)
        except (RuntimeError, TimeoutError):
            tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
            console.print(f"[red]{name} did not start[/red] (log {log_path}):\n{tail}")
            raise
        yield service
    finally:
        service_process.stop(child)


def start_naive(
    settings: Settings,
    repo_dir: Path,
    feature_service: str,
    tag: str,
    workdir: Path,
    openmp_threads: int | None,
) -> Callable[[int, Path], subprocess.Popen[bytes]]:
    # Its own BENTOML_HOME, sharing only the model store: two servers on one home
    # share Prometheus' multiprocess folder, and the later one wipes the other's
    # metrics at start-up.
    home = workdir / "naive_bentoml"
    home.mkdir(exist_ok=True)
    if not (home / "models").exists():
        (home / "models").symlink_to(settings.bentoml_home / "models")

    def start(port: int, log_path: Path) -> subprocess.Popen[bytes]:
        env = service_process.service_env(
            settings,
            extra={
                "BENTOML_HOME": str(home),
                "NAIVE_FEAST_REPO": str(repo_dir),
                "NAIVE_FEATURE_SERVICE": feature_service,
                "NAIVE_MODEL_TAG": tag,
                **({"OMP_NUM_THREADS": str(openmp_threads)} if openmp_threads else {}),
            },
        )
        command = [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            "naive_service:NaiveFlightDelay",
            "--working-dir",
            str(BENCH_DIR),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        with open(log_path, "wb") as log:
            return subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    return start


def start_ours(settings: Settings, now: datetime) -> Callable[[int, Path], subprocess.Popen[bytes]]:
    def start(port: int, log_path: Path) -> subprocess.Popen[bytes]:
        return service_process.start(
            settings, port, log_path, extra_env={"FEASTLINE_NOW": now.isoformat()}
        )

    return start


def with_challenger(settings: Settings, workdir: Path, mode: str, percent: float) -> Settings:
    """A view of ``settings`` whose registry runs a challenger in ``mode``.

    The registry folder is new (the rollout state and BentoML's metrics folder
    live there) with the stored models linked in; everything else is linked to
    the scratch copy, except the monitoring logs, which stay apart.
    """
    from training.registry import list_models, save_model
    from training.rollout import start

    twin_tag = next(
        (r.tag for r in list_models(settings) if r.labels.get("bench") == "challenger"), None
    )
    if twin_tag is None:
        from training.registry import champion, load_pipeline, update_model

        crowned = champion(settings)
        assert crowned is not None
        metadata = {k: v for k, v in crowned.metadata.items() if k != "schema_version"}
        twin_tag = save_model(settings, load_pipeline(settings, crowned.tag), metadata).tag
        update_model(settings, twin_tag, labels={"bench": "challenger"})
    root = workdir / f"data-{mode}"
    root.mkdir()
    for entry in settings.data_dir.iterdir():
        if entry.name not in ("bentoml", "monitoring"):
            (root / entry.name).symlink_to(entry)
    (root / "bentoml").mkdir()
    (root / "bentoml" / "models").symlink_to(settings.bentoml_home / "models")
    variant = Settings(**{**settings.model_dump(), "data_dir": root})
    start(variant, twin_tag, mode, percent, reason="bench/serving.py", user="bench")
    return variant


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by a process and all its descendants.

    Unlike latency, CPU per request barely moves when other work shares the
    cores, so it is the steadier measure of how much work a request costs.
    Linux only (``/proc``); NaN elsewhere.
    """
    try:
        stats = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue  # exited meanwhile
                stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    except OSError:
        return float("nan")
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0))[1]
        todo.extend(children.get(pid, ()))
    return total / os.sysconf("SC_CLK_TCK")


def scrape_timings(url: str, headers: dict[str, str]) -> dict[str, float]:
    """Sums and counts of our service's Feast and model histograms (all workers)."""
    import httpx

    text = httpx.get(f"{url}/metrics", headers=headers, timeout=10).text
    totals: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        name = name.split("{", 1)[0]
        if name in TIMING_SERIES:
            totals[name] = totals.get(name, 0.0) + float(value.split()[0])
    return totals


TIMING_SERIES = {
    f"feastline_{metric}_seconds_{part}"
    for metric in ("online_feature", "model")
    for part in ("sum", "count")
}


# -- the run -------------------------------------------------------------------------------

# Left out of the scratch copy: earlier monitoring logs, service logs, reports, training sets.
SKIPPED = ("monitoring", "logs", "reports", "datasets")


def scratch_copy(source: Settings, workdir: Path) -> Settings:
    """The data directory, copied, so that the bench's traffic never reaches its state.

    Our service logs what it serves (monitoring) and materialization keeps
    watermarks; both then land in the copy, not in the real directory.
    """
    target = workdir / "data"
    target.mkdir(parents=True)
    for entry in source.data_dir.iterdir():
        if entry.name in SKIPPED:
            continue
        if entry.is_dir():
            shutil.copytree(
                entry,
                target / entry.name,
                symlinks=True,
                ignore=shutil.ignore_patterns("prometheus_multiproc_dir"),
            )
        else:
            shutil.copy2(entry, target / entry.name)
    return Settings(**{**source.model_dump(), "data_dir": target})


def materialize(settings: Settings, now: datetime) -> None:
    import redis

    from feature_repo.materialize import Materializer
    from feature_repo.store import open_store

    assert settings.redis_url is not None
    redis.Redis.from_url(settings.redis_url).flushdb()
    materializer = Materializer(settings, store=open_store(settings))
    materializer.state.reset()  # the database is empty: every view starts over
    result = materializer.run(now=now, wait_seconds=60)
    console.print(
        f"materialized {result.rows:,} rows into {settings.redis_url} through {now.isoformat()}"
    )


def traffic(now: datetime) -> list[dict[str, Any]]:
    from feature_repo.flights.requests import scheduled_flights

    flights = scheduled_flights(now.date())
    if len(flights) < 50:
        raise SystemExit(f"only {len(flights)} flights scheduled on {now.date()}; pick --now")
    return flights


def batches_of(flights: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [flights[i : i + size] for i in range(0, len(flights) - size + 1, size)]


@dataclass
class Results:
    cells: dict[tuple[int, int, str], list[Cell]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # (a)'s /metrics deltas, 1 x 1
    client_ms: list[float] = field(default_factory=list)  # (a)'s latencies for the same cells
    startup: dict[str, float] = field(default_factory=dict)

    def summaries(self) -> dict[tuple[int, int, str], Summary]:
        return {key: Summary.of(cells) for key, cells in self.cells.items()}


def measure(args: argparse.Namespace, settings: Settings, now: datetime, workdir: Path) -> Results:
    import naive_features  # bench/, on sys.path as this script's folder

    from feature_repo.flights.requests import FlightRequest
    from serving.champion import champion_tag, load_champion
    from serving.predictor import Predictor

    champion = load_champion(settings, champion_tag(settings))
    naive = naive_features.register_naive_features(settings, champion.feature_service, workdir)
    variants = {
        "ours": settings,
        "shadow": with_challenger(settings, workdir, "shadow", 0.0),
        "canary": with_challenger(settings, workdir, "canary", args.canary_percent),
    }
    flights = traffic(now)
    headers = {"X-API-Key": key} if (key := os.environ.get("FEASTLINE_API_KEY")) else {}
    results = Results()
    logs = workdir / "logs"
    logs.mkdir()
    with ExitStack() as stack:
        with console.status("starting (a) our service (alone, shadow, canary) and (b) the naive"):
            started = {
                name: stack.enter_context(running(name, start_ours(variant, now), logs))
                for name, variant in variants.items()
            }
            ours = started["ours"]
            naive_service = stack.enter_context(
                running(
                    "naive",
                    start_naive(
                        settings,
                        naive.repo_dir,
                        naive.feature_service,
                        champion.tag,
                        workdir,
                        None if args.naive_default_openmp else 1,
                    ),
                    logs,
                )
            )
            os.environ["FEASTLINE_NOW"] = now.isoformat()  # the floor's clock, as the services'
            predictor = Predictor(settings)
        results.startup = {
            **{name: service.startup_seconds for name, service in started.items()},
            "naive": naive_service.startup_seconds,
        }
        for name in ("shadow", "canary"):
            model = _model_of(started[name], headers)
            if not model.get("challenger"):
                raise SystemExit(f"{LABELS[name]} runs no challenger: {model}")
        console.print(
            f"model {champion.tag} (fast scoring: {champion.scorer.fast}); ready in "
            f"{ours.startup_seconds:.1f}s (a) and {naive_service.startup_seconds:.1f}s (b); "
            f"traffic: the {len(flights)} flights of {now.date()}; naive feature service "
            f"{naive.feature_service} (pandas twins of {', '.join(naive.twins)})"
            + (f"; service logs in {logs}" if args.keep else "")
        )
        services = {**started, "naive": naive_service}
        for size in args.sizes:
            batches = batches_of(flights, size)
            bodies = [json.dumps({"flights": b}).encode() for b in batches]
            validated = [[FlightRequest(**f) for f in b] for b in batches]
            wire = {
                **{n: [http_request(started[n].port, b, headers) for b in bodies] for n in OURS},
                "naive": [http_request(naive_service.port, b, {}) for b in bodies],
            }
            # Warm-up (imports, caches, connection pools), never timed.
            for name, service in services.items():
                run_loop(drive_http(service.port, wire[name], size, 2, 40, 30))
            drive_in_process(predictor.score, validated, 1, 40, 30)
            for round_ in range(args.rounds):
                for concurrency in args.concurrency:
                    for name in TARGETS:
                        with console.status(
                            f"round {round_ + 1}/{args.rounds}: {LABELS[name]}, "
                            f"{size} flight(s) a request, concurrency {concurrency}"
                        ):
                            if name == "floor":
                                began = time.process_time()
                                cell = drive_in_process(
                                    predictor.score,
                                    validated,
                                    concurrency,
                                    args.requests,
                                    args.seconds,
                                )
                                cell.cpu_seconds = time.process_time() - began
                                results.cells.setdefault((size, concurrency, name), []).append(cell)
                                continue
                            service = services[name]
                            timed = name == "ours" and size == 1 and concurrency == 1
                            before = scrape_timings(service.url, headers) if timed else {}
                            began = tree_cpu_seconds(service.process.pid)
                            cell = run_loop(
                                drive_http(
                                    service.port,
                                    wire[name],
                                    size,
                                    concurrency,
                                    args.requests,
                                    args.seconds,
                                )
                            )
                            cell.cpu_seconds = tree_cpu_seconds(service.process.pid) - began
                            if timed:
                                after = scrape_timings(service.url, headers)
                                for key, value in after.items():
                                    delta = value - before.get(key, 0.0)
                                    results.timings[key] = results.timings.get(key, 0.0) + delta
                                results.client_ms += cell.latencies_ms
                        results.cells.setdefault((size, concurrency, name), []).append(cell)
    return results


def _model_of(service: Service, headers: dict[str, str]) -> dict[str, Any]:
    import httpx

    return httpx.post(f"{service.url}/model", json={}, headers=headers, timeout=10).json()


# -- the report ----------------------------------------------------------------------------


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and not math.isnan(a) and not math.isnan(b) else ""


HEADER = [
    "flights",
    "conc.",
    "service",
    "p50 ms",
    "p99 ms",
    "req/s",
    "CPU ms/req",
    "errors",
    "/(b) req/s",
    "/(c) req/s",
    "/(b) p50",
    "/(c) p50",
    "/(a) p50",
]


def rows(
    summaries: dict[tuple[int, int, str], Summary], args: argparse.Namespace
) -> list[list[str]]:
    """One row per target and load; the ratios sit on (a)'s row."""
    body = []
    for size in args.sizes:
        for concurrency in args.concurrency:
            s = {name: summaries[(size, concurrency, name)] for name in TARGETS}
            for name in TARGETS:
                row = [
                    str(size) if name == TARGETS[0] else "",
                    str(concurrency) if name == TARGETS[0] else "",
                    LABELS[name],
                    f"{s[name].p50:.2f}",
                    f"{s[name].p99:.2f}",
                    f"{s[name].rate:,.0f}",
                    f"{s[name].cpu_ms:.2f}",
                    str(s[name].errors),
                ]
                if name in OURS:
                    row += [
                        _ratio(s[name].rate, s["naive"].rate),
                        _ratio(s[name].rate, s["floor"].rate),
                        _ratio(s[name].p50, s["naive"].p50),
                        _ratio(s[name].p50, s["floor"].p50),
                        _ratio(s[name].p50, s["ours"].p50) if name != "ours" else "",
                    ]
                else:
                    row += ["", "", "", "", ""]
                body.append(row)
    return body


def markdown(body: list[list[str]]) -> str:
    align = [":---" if name == "service" else "---:" for name in HEADER]
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def verdicts(summaries: dict[tuple[int, int, str], Summary], args: argparse.Namespace) -> list[str]:
    lines = []
    if (1, 1, "ours") in summaries:
        ours = summaries[(1, 1, "ours")]
        lines.append(
            _verdict(
                ours.p50 <= TARGET_P50_MS,
                f"single flight, sequential: p50 {ours.p50:.2f} ms (target <= {TARGET_P50_MS:g})",
            )
        )
        lines.append(
            _verdict(
                ours.p99 <= TARGET_P99_MS,
                f"single flight, sequential: p99 {ours.p99:.2f} ms (target <= {TARGET_P99_MS:g})",
            )
        )
        shadow = summaries[(1, 1, "shadow")]
        lines.append(
            _verdict(
                shadow.p50 <= TARGET_SHADOW_P50_RATIO * ours.p50,
                f"single flight, sequential, with a shadow: p50 {shadow.p50:.2f} ms, "
                f"{shadow.p50 / ours.p50 - 1:+.0%} on (a)'s {ours.p50:.2f} ms "
                f"(target <= {TARGET_SHADOW_P50_RATIO - 1:+.0%})",
            )
        )
    for size in args.sizes:
        if (size, 8, "ours") not in summaries:
            continue
        b = summaries[(size, 8, "naive")]
        for name in OURS:
            a = summaries[(size, 8, name)]
            lines.append(
                _verdict(
                    a.rate >= TARGET_SPEEDUP * b.rate,
                    f"{LABELS[name]}, {size} flight(s) a request, concurrency 8: "
                    f"{a.rate / b.rate:.1f}x the naive service's throughput "
                    f"(target >= {TARGET_SPEEDUP:g}x)",
                )
            )
    errors = {n: sum(s.errors for k, s in summaries.items() if k[2] == n) for n in TARGETS}
    lines.append(
        _verdict(
            not any(errors.values()),
            "errors: " + ", ".join(f"{LABELS[n]} {errors[n]}" for n in TARGETS) + " (target 0)",
        )
    )
    for key, summary in summaries.items():
        if summary.first_error:
            lines.append(f"  first error of {key}: {summary.first_error}")
    return lines


def _verdict(ok: bool, text: str) -> str:
    return f"[green]met[/green]      {text}" if ok else f"[red]NOT met[/red]  {text}"


def report(results: Results, args: argparse.Namespace) -> str:
    summaries = results.summaries()
    body = rows(summaries, args)
    table = Table(
        title=f"Serving: median of {args.rounds} round(s); each at most {args.requests:,} "
        f"requests or {args.seconds:g}s; latency at the client",
    )
    for i, name in enumerate(HEADER):
        table.add_column(name, justify="left" if i == 2 else "right")
    for i, row in enumerate(body):
        table.add_row(*row, end_section=i % len(TARGETS) == len(TARGETS) - 1)
    console.print(table)
    for line in verdicts(summaries, args):
        console.print(line)
    count = results.timings.get("feastline_online_feature_seconds_count", 0.0)
    if count and results.client_ms:
        feast_ms = results.timings["feastline_online_feature_seconds_sum"] / count * 1000
        model_ms = results.timings.get("feastline_model_seconds_sum", 0.0) / count * 1000
        client_ms = statistics.fmean(results.client_ms)
        console.print(
            f"(a), 1 flight, concurrency 1, mean per request: {client_ms:.2f} ms at the client "
            f"= Feast get_online_features + TTL masking {feast_ms:.2f} ms + model {model_ms:.2f} "
            f"ms + everything else {client_ms - feast_ms - model_ms:.2f} ms (HTTP, BentoML, "
            "validation, monitoring hooks, response)"
        )
    elif 1 in args.sizes and 1 in args.concurrency:
        console.print("(a)'s /metrics had no Feast/model timings; no breakdown")
    console.print(
        "start-up to ready: "
        + ", ".join(f"{LABELS[n]} {results.startup[n]:.1f}s" for n in results.startup)
        + f"; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the end. "
        "CPU ms/req: the server's processes for (a), (a'), (a\") and (b), this process for (c)."
    )
    return markdown(body)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/10",
        help="a Redis database the benchmark owns: flushed before and after",
    )
    parser.add_argument(
        "--now",
        default="2013-06-01T00:00:00+00:00",
        help="materialize and serve at this instant; its day's flights are the traffic",
    )
    parser.add_argument("--sizes", type=_ints, default=[1, 50], help="flights per request")
    parser.add_argument("--concurrency", type=_ints, default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000, help="at most, per cell and round")
    parser.add_argument("--seconds", type=float, default=4.0, help="at most, per cell and round")
    parser.add_argument(
        "--naive-default-openmp",
        action="store_true",
        help="leave the naive service's OpenMP at its default (one thread per core); by "
        "default it gets OMP_NUM_THREADS=1, which spares it the fork-join cost per tree "
        "that otherwise dominates its latency on a busy 2-core machine",
    )
    parser.add_argument(
        "--canary-percent",
        type=float,
        default=10.0,
        help='share of flights the canary challenger answers in (a") (default 10)',
    )
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and logs")
    args = parser.parse_args(argv)
    now = datetime.fromisoformat(args.now).astimezone(UTC)
    settings = Settings.from_env(redis_url=args.redis_url)
    if not (settings.bentoml_home / "models").is_dir() or not settings.features_dir.is_dir():
        parser.error(
            f"no feature tables or model registry in {settings.data_dir}: "
            "run `make run` first (the bench serves its champion on a copy of that data)"
        )

    from feature_repo.store import quiet_feast_warnings

    quiet_feast_warnings()
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    results = Results()
    try:
        settings = scratch_copy(settings, workdir)
        materialize(settings, now)
        results = measure(args, settings, now, workdir)
        table = report(results, args)
        if args.markdown:
            args.markdown.write_text(table + "\n")
            console.print(f"Markdown table: {args.markdown}")
    finally:
        import redis

        redis.Redis.from_url(args.redis_url).flushdb()
        if args.keep:
            console.print(f"scratch folder and service logs kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(c.errors for cells in results.cells.values() for c in cells) else 0


if __name__ == "__main__":
    sys.exit(main())
