"""What monitoring costs the service: profiling on against off, same run, same load.

    .venv/bin/python bench/serving_overhead.py [--data-dir DIR] [--now T]
        [--requests 2000] [--concurrency 1,8] [--rounds 4] [--workers 2]
        [--writer-process on|off]

Needs a data directory with a champion model and a materialized SQLite online
store (``make run``, or a replay; ``FEASTLINE_DATA_DIR`` or ``--data-dir``).
The benchmark works on a scratch copy of it, without ``monitoring/``, so its
traffic never lands in the real served-data logs.

Two copies of the real service (``serving.process.start``, ``bentoml serve``)
run side by side: one with ``FEASTLINE_PROFILING=on`` (whylogs profiles, the
prediction log and the served-features log, all off the request path) and one
with it off. Both serve at ``--now`` (default: the data directory's clock).
The traffic is ``--now``'s day of scheduled flights, one flight per request,
sent by threads with an httpx client each, closed loop, at each concurrency.
Per concurrency each service gets ``--requests`` requests, in ``--rounds``
blocks that alternate between the two (on, off, off, on, ...), so that the
machine's background noise falls on both alike. Every block is bounded by its
request count and every request by a timeout.

Reported: p50, p99 and throughput per service, the on/off ratios against the
targets (p99 at most 1.15x, throughput at least 0.9x), and the drop counter
(``feastline_served_rows_dropped_total`` from ``/metrics``), which must read zero.
After a clean stop the profiles are read back: their rows must equal the
flights served. ``--writer-process off`` measures the writers in threads of
the worker instead of the child process, the design this replaced. Exit
code 0 when every target holds, 3 when one is missed, 1 on errors. Not run by
the tests.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from feature_repo.settings import Settings  # noqa: E402
from serving import process as service_process  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 160)

MODES = ("on", "off")
REQUEST_TIMEOUT = 30.0
WARMUP_REQUESTS = 100
MAX_P99_RATIO = 1.15
MIN_THROUGHPUT_RATIO = 0.9
# What the scratch copy leaves out: earlier served-data logs, logs, reports.
SKIPPED = ("monitoring", "logs", "reports", "datasets")


@dataclass
class Cell:
    """All blocks of one service at one concurrency."""

    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[q - 1]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else float("nan")


@dataclass
class Service:
    mode: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scratch_copy(source: Settings, workdir: Path) -> Settings:
    """The data directory without its monitoring logs; the copy's logs are the bench's own."""
    target = workdir / "data"
    target.mkdir(parents=True)
    for entry in source.data_dir.iterdir():
        if entry.name in SKIPPED:
            continue
        if entry.is_dir():
            shutil.copytree(entry, target / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, target / entry.name)
    return Settings(data_dir=target, redis_url=source.redis_url)


@contextmanager
def running(
    settings: Settings,
    mode: str,
    now: datetime,
    workers: int | None,
    workdir: Path,
    writer_process: str,
) -> Iterator[Service]:
    port = free_port()
    log_path = workdir / f"service-{mode}.log"
    env = {
        "FEASTLINE_NOW": now.isoformat(),
        "FEASTLINE_PROFILING": mode,
        "FEASTLINE_SERVED_DATA_PROCESS": writer_process,
        "FEASTLINE_RELOAD_CHECK_SECONDS": "0",
    }
    process = service_process.start(settings, port, log_path, workers=workers, extra_env=env)
    service = Service(mode, f"http://127.0.0.1:{port}", process, log_path)
    try:
        service_process.wait_ready(service.url, process, 300, log_path)
        yield service
    finally:
        if process.poll() is None:
            service_process.stop(process)


def drive(url: str, bodies: list[bytes], start: int, count: int, concurrency: int) -> Cell:
    """Send ``count`` requests, ``concurrency`` at a time, closed loop; one client per thread."""
    cell = Cell()
    tickets = itertools.count()
    lock = threading.Lock()

    def worker() -> None:
        latencies, errors = [], 0
        headers = {"content-type": "application/json"}
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as client:
            while True:
                with lock:
                    ticket = next(tickets)
                if ticket >= count:
                    break
                body = bodies[(start + ticket) % len(bodies)]
                sent = time.perf_counter()
                try:
                    response = client.post("/predict", content=body, headers=headers)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append((time.perf_counter() - sent) * 1000)
                errors += not ok
        with lock:
            cell.latencies_ms.extend(latencies)
            cell.errors += errors

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT * count)
    cell.seconds = time.perf_counter() - began
    return cell


def merge(into: Cell, block: Cell) -> None:
    into.latencies_ms.extend(block.latencies_ms)
    into.seconds += block.seconds
    into.errors += block.errors


def dropped_rows(url: str) -> float:
    """``feastline_served_rows_dropped_total``, summed over workers."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("feastline_served_rows_dropped_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def traffic(settings: Settings, now: datetime) -> list[bytes]:
    import json

    from feature_repo.flights.requests import scheduled_flights

    flights = scheduled_flights(now.date())
    if len(flights) < 100:
        raise SystemExit(f"only {len(flights)} flights scheduled on {now.date()}; pick --now")
    return [json.dumps({"flights": [f]}).encode() for f in flights]


def ratio(on: float, off: float) -> float:
    return on / off if off else float("nan")


def report(
    cells: dict[tuple[int, str], Cell], drops: float, profiled: int, sent_on: int
) -> tuple[Table, list[tuple[bool, str]]]:
    table = Table(title="serving with monitoring on vs off (1 flight per request)")
    for name in ("concurrency", "profiling", "requests", "errors", "p50 ms", "p99 ms", "req/s"):
        table.add_column(name, justify="left" if name == "profiling" else "right")
    table.add_column("on/off p50", justify="right")
    table.add_column("on/off p99", justify="right")
    table.add_column("on/off req/s", justify="right")
    checks: list[tuple[bool, str]] = []
    for concurrency in sorted({c for c, _ in cells}):
        on, off = cells[(concurrency, "on")], cells[(concurrency, "off")]
        p50 = ratio(on.percentile(50), off.percentile(50))
        p99 = ratio(on.percentile(99), off.percentile(99))
        rate = ratio(on.throughput, off.throughput)
        for mode, cell in (("on", on), ("off", off)):
            table.add_row(
                str(concurrency),
                mode,
                f"{cell.requests:,}",
                str(cell.errors),
                f"{cell.percentile(50):.2f}",
                f"{cell.percentile(99):.2f}",
                f"{cell.throughput:.0f}",
                f"{p50:.2f}x" if mode == "on" else "",
                f"{p99:.2f}x" if mode == "on" else "",
                f"{rate:.2f}x" if mode == "on" else "",
            )
        checks.append(
            (p99 <= MAX_P99_RATIO, f"concurrency {concurrency}: p99 on/off {p99:.2f}x <= 1.15x")
        )
        checks.append(
            (
                rate >= MIN_THROUGHPUT_RATIO,
                f"concurrency {concurrency}: throughput on/off {rate:.2f}x >= 0.9x",
            )
        )
    checks.append((drops == 0, f"dropped served rows: {drops:.0f} (must be 0)"))
    checks.append(
        (profiled == sent_on, f"profiled rows after a clean stop: {profiled:,} of {sent_on:,}")
    )
    return table, checks


def profiled_rows(settings: Settings) -> int:
    from monitoring.layout import profiles_dir
    from monitoring.profiles import read_profiles

    folder = profiles_dir(settings)
    if not any(folder.glob("*.bin")):
        return 0
    return read_profiles([folder]).rows


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="default: FEASTLINE_DATA_DIR")
    parser.add_argument(
        "--now", default=None, help="serve at this instant (default: the data directory's clock)"
    )
    parser.add_argument("--requests", type=int, default=2000, help="per service and concurrency")
    parser.add_argument("--concurrency", type=_ints, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=4, help="alternating blocks per concurrency")
    parser.add_argument("--workers", type=int, default=None, help="service workers (default 2)")
    parser.add_argument(
        "--writer-process",
        choices=["on", "off"],
        default="on",
        help="FEASTLINE_SERVED_DATA_PROCESS of the profiling service: the writers in a child "
        "process (default, as the service runs) or in threads of the worker",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and logs")
    args = parser.parse_args(argv)

    from feature_repo.clock import Clock, parse_instant

    source = Settings.from_env(data_dir=args.data_dir) if args.data_dir else Settings.from_env()
    now = parse_instant(args.now) if args.now else Clock(source).now().instant
    now = now.astimezone(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    cells: dict[tuple[int, str], Cell] = {}
    try:
        settings = scratch_copy(source, workdir)
        bodies = traffic(settings, now)
        console.print(
            f"{len(bodies):,} flights of {now.date()} as traffic; serving at {now.isoformat()}; "
            f"scratch copy {settings.data_dir}"
        )
        with ExitStack() as stack:
            services = {
                mode: stack.enter_context(
                    running(settings, mode, now, args.workers, workdir, args.writer_process)
                )
                for mode in MODES
            }
            for service in services.values():
                drive(service.url, bodies, 0, WARMUP_REQUESTS, 1)
            offset = WARMUP_REQUESTS
            per_block = max(1, args.requests // args.rounds)
            for concurrency in args.concurrency:
                for mode in MODES:
                    cells[(concurrency, mode)] = Cell()
                for block in range(args.rounds):
                    order = MODES if block % 2 == 0 else MODES[::-1]
                    for mode in order:
                        cell = drive(services[mode].url, bodies, offset, per_block, concurrency)
                        merge(cells[(concurrency, mode)], cell)
                    offset += per_block
            drops = dropped_rows(services["on"].url)
            code = service_process.stop(services["on"].process)
            if code != 0:
                console.print(f"[red]profiling-on service exited with code {code}[/red]")
        sent_on = WARMUP_REQUESTS + sum(
            c.requests - c.errors for (_, m), c in cells.items() if m == "on"
        )
        table, checks = report(cells, drops, profiled_rows(settings), sent_on)
        console.print(table)
        for ok, text in checks:
            console.print(("[green]PASS[/green] " if ok else "[red]FAIL[/red] ") + text)
    finally:
        if args.keep:
            console.print(f"scratch folder and service logs kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if any(cell.errors for cell in cells.values()):
        return 1
    return 0 if all(ok for ok, _ in checks) else 3


if __name__ == "__main__":
    sys.exit(main())
