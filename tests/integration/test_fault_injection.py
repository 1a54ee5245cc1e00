"""Fault injection through the real CLIs and the real service (issue 17).

Each case breaks something on disk or sends something hostile, then checks
that the system names the problem in one line, keeps serving what it can, and
that nothing already stored changed (sha256 before and after) unless changing
it was the command's job.

The module must run within two minutes, so it pays each fixed cost once:
commands run through their own ``main`` in this process (:func:`run`) unless
their process is what is tested (start-up errors, signals: :func:`cli`); one
service, started by ``python -m serving serve``, starts up while the data-dir
cases run, serves every HTTP case and is SIGKILLed by the last case; and when
the session has no champion yet, the one trained here uses two weeks of data.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis

from feature_repo.settings import Settings
from tests.conftest import tree_checksums
from tests.integration.conftest import MAIN_REDIS, free_port
from tests.integration.serving_support import RunningService
from tests.integration.test_serving import _flights, _promote, _train

NOW = datetime(2013, 2, 20, tzinfo=UTC)
API_KEY = "fault-key-7c1d"
HEADERS = {"X-API-Key": API_KEY}
BROKEN_VERSION = "zzbrokenentry0000"  # sorts last, as a newer candidate would


@dataclass
class World:
    settings: Settings
    champion: str

    @property
    def models(self) -> Path:
        return self.settings.bentoml_home / "models" / "flight_delay"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            FEASTLINE_DATA_DIR=str(self.settings.data_dir),
            BENTOML_HOME=str(self.settings.bentoml_home),
            REDIS_URL=self.settings.redis_url or "",
            FEASTLINE_NOW=NOW.isoformat(),
            PYTHONPATH=str(Path(__file__).resolve().parents[2]),
            COLUMNS="200",  # tables too wide for 80 columns would shorten the tags
        )
        env.pop("FEASTLINE_API_KEY", None)
        env.update(extra)
        return env


def cli(world: World, *args: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    """``python -m <args>``; a run that outlives ``timeout`` is killed with its group."""
    child = subprocess.Popen(
        [sys.executable, "-m", *args],
        env=world.env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        out, err = child.communicate()
        pytest.fail(f"`{' '.join(args)}` still running after {timeout}s: {out[-500:]} {err[-500:]}")
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def run(world: World, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m <args>`` called in this process: the command's own ``main`` (argument
    parsing, logging set-up, error lines, exit codes) without the interpreter's start-up
    (4-6 s a call). For cases about what a command does; :func:`cli` starts a process
    where the process itself is under test (start-up errors, signals)."""
    main = importlib.import_module(f"{args[0]}.__main__").main
    saved_env = dict(os.environ)
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(world.env(**env))
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args[1:]))
            except SystemExit as exit_:  # argparse's usage errors
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        for handler in root.handlers[:]:  # the command's console and JSON file handlers
            if handler not in saved_handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in saved_handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(saved_level)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def registry_sums(world: World) -> dict[str, str]:
    """sha256 of the registry's files (not the service's metrics scratch, nor the lock)."""
    sums = tree_checksums(world.settings.bentoml_home)
    return {
        path: digest
        for path, digest in sums.items()
        if "prometheus_multiproc_dir" not in path and not path.endswith(".registry.lock")
    }


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return " ".join(result.stderr.split())


@pytest.fixture(scope="module")
def world(pipeline) -> Iterator[World]:
    """The session's data on Redis db 7, materialized through NOW, with a champion."""
    from feature_repo.materialize import Materializer
    from feature_repo.store import open_store
    from serving.champion import NoChampion, champion_tag

    url = MAIN_REDIS.format(db=7)
    redis.Redis.from_url(url).flushdb()
    settings = Settings(data_dir=pipeline.settings.data_dir, redis_url=url)
    store = open_store(settings)
    Materializer(settings, store=store).state.reset()
    Materializer(settings, store=store).run(now=NOW)
    try:
        tag = champion_tag(settings)
    except NoChampion:
        tag = _train_small(settings, store)
        _promote(settings, tag)
    yield World(settings, tag)
    redis.Redis.from_url(url).flushdb()


def _train_small(settings: Settings, store: object) -> str:
    """A champion on two weeks of February: the cases need a complete registry entry
    (model, metadata, calibrated reference profile), not a good model, and the
    reference profile's calibration costs time per day of history."""
    from datetime import date

    return _train(
        settings,
        store,
        seed=11,
        train_start=date(2013, 2, 1),
        train_end=date(2013, 2, 10),
        valid_end=date(2013, 2, 14),
    )


def make_unreadable_entry(world: World) -> Path:
    """A copy of the champion's entry with an unreadable model.yaml, as a newer candidate."""
    source = world.models / world.champion.split(":", 1)[1]
    broken = world.models / BROKEN_VERSION
    shutil.copytree(source, broken)
    (broken / "model.yaml").write_text("name: flight_delay\nversion: [unclosed\n  labels: {\n")
    return broken


@pytest.fixture()
def broken_entry(world) -> Iterator[Path]:
    broken = make_unreadable_entry(world)
    yield broken
    shutil.rmtree(broken, ignore_errors=True)


SERVICE_ENV = {
    "FEASTLINE_API_KEY": API_KEY,
    "FEASTLINE_BODY_TIMEOUT_SECONDS": "1",
    "FEASTLINE_HEADER_TIMEOUT_SECONDS": "1",
    "FEASTLINE_MAX_BODY_BYTES": str(256 * 1024),
    "FEASTLINE_RELOAD_CHECK_SECONDS": "0",
}


@dataclass
class ServeCommand:
    """``python -m serving serve``, as people start the service, and what it started with."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    broken: Path  # the unreadable registry entry it found at start-up


@pytest.fixture(scope="module")
def serve_command(world, tmp_path_factory) -> Iterator[ServeCommand]:
    """The module's one service, started by the serve command while the registry holds an
    unreadable entry, and left to start up (tens of seconds) while the data-dir cases,
    first in this file and never touching the registry, run; :func:`service` waits for
    it. The SIGKILL case, last, kills it."""
    log_path = tmp_path_factory.mktemp("fault-service") / "service.log"
    broken = make_unreadable_entry(world)
    port = free_port()
    with open(log_path, "wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "serving", "serve", "--port", str(port), "--workers", "1"],
            env=world.env(**SERVICE_ENV),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield ServeCommand(child, f"http://127.0.0.1:{port}", log_path, broken)
    finally:
        for pid in _descendants(child.pid) | {child.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        child.wait(timeout=30)
        shutil.rmtree(broken, ignore_errors=True)


@pytest.fixture(scope="module")
def service(serve_command) -> RunningService:
    """The module's service, ready."""
    from serving import process as service_process

    service_process.wait_ready(
        serve_command.url, serve_command.process, 180, serve_command.log_path
    )
    # Started with it; removed now so that the other cases meet a clean registry.
    shutil.rmtree(serve_command.broken, ignore_errors=True)
    return RunningService(url=serve_command.url, log_path=serve_command.log_path)


def _post(url: str, content: bytes | str, content_type: str | None, **headers: str):
    sent = {**HEADERS, **headers}
    if content_type is not None:
        sent["content-type"] = content_type
    return httpx.post(url, content=content, headers=sent, timeout=30)


def _flight(world: World) -> dict:
    return _flights(world.settings, 1, seed=5)[0]


# -- The data dir: relocation, integrity, bounds, hygiene (first, while the service starts) -----
@pytest.fixture()
def data_copy(world, serve_command, tmp_path) -> World:
    """A private copy of the session's data dir (the service starts meanwhile: its
    metrics scratch and the unreadable entry it starts with are left out)."""
    copy = tmp_path / "copy"
    left_out = shutil.ignore_patterns("*.lock", "prometheus_multiproc_dir", BROKEN_VERSION)
    shutil.copytree(world.settings.data_dir, copy, ignore=left_out)
    return World(Settings(data_dir=copy, redis_url=world.settings.redis_url), world.champion)


def zeroed_inside(payload: bytes, count: int) -> bytes:
    """``payload`` with ``count`` bytes zeroed in place, from the first non-zero byte at or
    after its middle (a whylogs profile can hold runs of zeros there already)."""
    start = next(i for i in range(len(payload) // 2, len(payload)) if payload[i])
    damaged = bytearray(payload)
    damaged[start : start + count] = bytes(count)
    assert len(damaged) == len(payload) and bytes(damaged) != payload
    return bytes(damaged)


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.integration
def test_a_copied_data_dir_never_reads_the_original(world, data_copy) -> None:
    """Severe 2: Feast's registry holds the original's absolute paths; the copy must
    read its own feature files, even with a broken file in the original."""
    original = world.settings.features_dir / "weather_hourly" / "date=2013-02-11" / "part-0.parquet"
    saved = original.read_bytes()
    copy_features = tree_checksums(data_copy.settings.features_dir)
    out = data_copy.settings.datasets_dir / "relocated.parquet"
    try:
        original.write_bytes(saved[:100])  # truncated: unreadable if anyone reads it
        built = run(
            data_copy,
            "training",
            "build-dataset",
            "--start",
            "2013-02-11",
            "--end",
            "2013-02-11",
            "--out",
            str(out),
        )
    finally:
        original.write_bytes(saved)
    assert built.returncode == 0, built.stdout[-1500:] + built.stderr[-1500:]
    assert out.is_file()
    assert tree_checksums(data_copy.settings.features_dir) == copy_features


@pytest.mark.integration
def test_a_corrupt_feature_partition_is_refused_under_its_own_path(data_copy, tmp_path) -> None:
    """Finding 10 and the integrity checks: a feature partition with bytes overwritten in
    place (same size) is refused by the training-set build and by batch scoring, both
    naming the file under the data dir (the build used to name a link in its scratch
    folder, or read the damaged values without a word); nothing is written."""
    import pandas as pd

    settings = data_copy.settings
    flight = _flights(settings, 1, seed=5)[0]
    predicted = datetime.fromisoformat(flight["sched_dep"]) - settings.prediction_lead
    day = predicted.astimezone(UTC).date().isoformat()
    partition = settings.features_dir / "weather_hourly" / f"date={day}" / "part-0.parquet"
    partition.write_bytes(zeroed_inside(partition.read_bytes(), 64))
    flights_file = tmp_path / "flights.parquet"
    pd.DataFrame([flight]).to_parquet(flights_file)
    stored = without_logs(tree_checksums(settings.data_dir))

    out = settings.datasets_dir / "never-built.parquet"
    scores = tmp_path / "scores.parquet"
    cases = [
        ("training", "build-dataset", "--start", day, "--end", day, "--out", str(out)),
        ("serving", "batch", "--input", str(flights_file), "--output", str(scores)),
    ]
    for args in cases:
        refused = run(data_copy, *args)
        assert refused.returncode == 1, (args, refused.stdout[-1500:], refused.stderr[-1500:])
        message = one_line_error(refused)
        assert f"feature partition {partition} is corrupt" in message, message
        assert "scratch" not in message
    assert not out.exists() and not scores.exists()
    assert not list((settings.state_dir / "scratch").glob("training-set.*"))  # its own, removed
    assert without_logs(tree_checksums(settings.data_dir)) == stored


@pytest.mark.integration
def test_a_corrupt_feast_registry_is_named_and_apply_rebuilds_it(data_copy) -> None:
    registry = data_copy.settings.feast_dir / "registry.db"
    registry.write_bytes(registry.read_bytes()[: registry.stat().st_size // 2])
    features = tree_checksums(data_copy.settings.features_dir)
    window = ("--start", "2013-02-10", "--end", "2013-02-10")
    out = ("--out", str(data_copy.settings.datasets_dir / "never-built.parquet"))
    failed = run(data_copy, "training", "build-dataset", *window, *out)
    assert failed.returncode == 1
    message = one_line_error(failed)
    assert str(registry) in message and "python -m feature_repo apply" in message
    applied = run(data_copy, "feature_repo", "apply")
    assert applied.returncode == 0, applied.stderr[-1500:]
    assert list(data_copy.settings.feast_dir.glob("registry.db.corrupt-*"))  # kept, not deleted
    from feature_repo.store import open_store

    names = {v.name for v in open_store(data_copy.settings).list_feature_views()}
    assert "weather_hourly" in names
    assert tree_checksums(data_copy.settings.features_dir) == features


@pytest.mark.integration
def test_ingest_refuses_a_through_day_past_the_source_or_the_clock(data_copy) -> None:
    raw = tree_checksums(data_copy.settings.raw_dir, data_copy.settings.features_dir)
    for through, reason in (("2099-12-31", "in the future"), ("2014-01-05", "last event")):
        refused = run(data_copy, "feature_repo", "ingest", "--through", through)
        assert refused.returncode == 1, refused.stdout[-800:]
        assert reason in one_line_error(refused)
    assert tree_checksums(data_copy.settings.raw_dir, data_copy.settings.features_dir) == raw


@pytest.mark.integration
def test_reversed_and_backwards_windows_are_refused(data_copy) -> None:
    stored = tree_checksums(data_copy.settings.data_dir)
    cases = [
        (("materialize", "--backfill", "2013-02-03", "2013-02-01"), "reversed"),
        (
            ("schedule", "--replay", "--start", "2013-02-05", "--end", "2013-02-01"),
            "reversed",
        ),
    ]
    for args, reason in cases:
        refused = run(data_copy, "feature_repo", *args)  # the world's Redis, watermarks at NOW
        assert refused.returncode == 1, (args, refused.stdout[-800:], refused.stderr[-800:])
        assert reason in one_line_error(refused)

    assert without_logs(tree_checksums(data_copy.settings.data_dir)) == without_logs(stored)


def without_logs(sums: dict[str, str]) -> dict[str, str]:
    """Stored files' sums without the logs: every command, refused or not, appends its
    JSON lines to ``logs/``."""
    return {k: v for k, v in sums.items() if "/logs/" not in k}


def online_store_digest(url: str) -> str:
    """sha256 over every key of a Redis database and its serialized value."""
    import hashlib

    client = redis.Redis.from_url(url)
    keys = sorted(client.scan_iter(count=5000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
    digest = hashlib.sha256()
    for key, value in zip(keys, pipe.execute(), strict=True):
        digest.update(key + b"\0" + (value or b"") + b"\0")
    client.close()
    return digest.hexdigest()


@pytest.mark.integration
def test_materialize_now_behind_the_watermark_is_refused(data_copy) -> None:
    """Finding 11: `materialize --now` below the online store's watermark exited 0 (and
    recorded a run "now" that never happened). A store that came back empty after a
    reset has no watermark, and is rebuilt as of that very instant."""
    from feature_repo.state_files import MaterializationState

    url = data_copy.settings.redis_url
    assert url
    stored = without_logs(tree_checksums(data_copy.settings.data_dir))
    online = online_store_digest(url)
    watermark = NOW.isoformat()  # the world's store, materialized through NOW
    cases = [
        (("materialize", "--now", "2013-02-10"), "2013-02-10T00:00:00+00:00"),
        # A replay's first run is its first tick's end, a day after --start.
        (
            ("schedule", "--replay", "--start", "2013-02-10", "--end", "2013-02-12"),
            "2013-02-11T00:00:00+00:00",
        ),
    ]
    for args, now in cases:
        refused = run(data_copy, "feature_repo", *args)
        assert refused.returncode == 1, (args, refused.stdout[-800:], refused.stderr[-800:])
        message = one_line_error(refused)
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert f"now {now} is before the online store's watermark {watermark}" in message
    assert without_logs(tree_checksums(data_copy.settings.data_dir)) == stored
    assert online_store_digest(url) == online

    # The same state on an online store that is empty (SQLite, never written here).
    sqlite = Settings(data_dir=data_copy.settings.data_dir)
    shutil.copy(MaterializationState(data_copy.settings).path, MaterializationState(sqlite).path)
    (sqlite.feast_dir / "online_store.db").unlink(missing_ok=True)
    rebuilt = run(data_copy, "feature_repo", "materialize", "--now", "2013-02-10", REDIS_URL="")
    assert rebuilt.returncode == 0, rebuilt.stderr[-1500:]
    assert "rows through 2013-02-10 00:00 UTC" in " ".join(rebuilt.stdout.split())


@pytest.mark.integration
def test_status_says_the_last_run_failed(data_copy) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    failed = run(data_copy, "feature_repo", "materialize", "--now", "2013-02-25", REDIS_URL=dead)
    assert failed.returncode == 69
    status = run(data_copy, "feature_repo", "status", "--json", REDIS_URL=dead)
    assert status.returncode == 0
    last = json.loads(status.stdout)["last_run"]
    assert last["status"] == "failed" and "Redis" in last["error"]


@pytest.mark.integration
def test_an_idle_ingest_changes_nothing_stored(data_copy) -> None:
    """Nothing new through the raw watermark: no file is rewritten (the raw watermark's
    record used to be, with a new ``published_at``, and the feature watermark too)."""
    settings = data_copy.settings
    stored = tree_checksums(settings.raw_dir, settings.features_dir)
    ran = run(data_copy, "feature_repo", "ingest", "--through", "2013-02-28", REDIS_URL="")
    assert ran.returncode == 0, ran.stderr[-1500:]
    assert "nothing new" in ran.stdout
    assert tree_checksums(settings.raw_dir, settings.features_dir) == stored


@pytest.mark.integration
def test_temp_files_left_by_a_killed_run_are_removed_by_the_next(data_copy) -> None:
    """Finding 12: what killed runs leave in ``raw/``, ``features/`` and ``state/scratch/``
    is removed by the next ingest; a scratch folder a live run still owns is kept."""
    settings = data_copy.settings
    scratch = settings.state_dir / "scratch"
    # A training-set build, SIGKILLed once its scratch folder exists. (Its start-up runs
    # while the service starts in the background, which bounds this part of the module.)
    out = ("--out", str(settings.datasets_dir / "killed.parquet"))
    window = ("--start", "2013-01-02", "--end", "2013-02-27")
    victim = subprocess.Popen(
        [sys.executable, "-m", "training", "build-dataset", *window, *out],
        env=data_copy.env(REDIS_URL=""),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(scratch.glob("training-set.*")):
            assert victim.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
    killed = list(scratch.glob("training-set.*"))
    assert killed
    leftovers = [
        settings.raw_dir / "departures" / "date=2013-02-10" / ".part-0.parquet.x1.tmp",
        settings.features_dir / "weather_hourly" / ".part-0.parquet.x2.tmp",
        # A feature build's staging folder (its days are renamed out of it).
        settings.features_dir / ".weather_hourly.x3.tmp" / "date=2013-02-10" / "data_0.parquet",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a parquet file")

    def data_files() -> dict[str, str]:
        sums = tree_checksums(settings.raw_dir, settings.features_dir)
        return {k: v for k, v in sums.items() if ".tmp" not in k}

    kept = data_files()
    ran = run(data_copy, "feature_repo", "ingest", "--through", "2013-02-28", REDIS_URL="")
    assert ran.returncode == 0, ran.stderr[-1500:]
    assert not any(path.exists() for path in [*leftovers, *killed])
    assert not (settings.features_dir / ".weather_hourly.x3.tmp").exists()
    assert data_files() == kept  # nothing new through the watermark: nothing rewritten

    from feature_repo.leftovers import scratch_folder

    with scratch_folder(scratch, "training-set.") as live:  # a build running meanwhile
        # A new process: ingest sweeps once per process, and this one has swept already.
        again = cli(data_copy, "feature_repo", "ingest", "--through", "2013-02-28", REDIS_URL="")
        assert again.returncode == 0, again.stderr[-1500:]
        assert live.is_dir()


@pytest.mark.integration
def test_os_errors_are_one_line_naming_the_path(tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "raw").write_text("a file where a folder should be")
    world = World(Settings(data_dir=data), "")
    failed = run(world, "feature_repo", "ingest", "--through", "2013-01-02", REDIS_URL="")
    assert failed.returncode == 74, failed.stderr[-2000:]
    message = one_line_error(failed)
    assert str(data / "raw") in message
    assert len(failed.stderr.strip().splitlines()) <= 2


@pytest.mark.integration
def test_a_profile_with_zeroed_bytes_is_detected(world, tmp_path) -> None:
    """Finding 7: whylogs parsed a profile with 200 zeroed bytes and drift moved."""
    from monitoring.registry import champion

    reference = champion(world.settings).reference_profile
    assert reference is not None and reference.is_file()
    damaged = tmp_path / "damaged.bin"
    damaged.write_bytes(zeroed_inside(reference.read_bytes(), 200))
    before = _sha(reference)
    compared = run(
        world,
        "monitoring",
        "compare",
        "--reference",
        str(damaged),
        "--target",
        str(reference),
        "--out",
        str(tmp_path / "drift"),
        "--no-html",
    )
    assert compared.returncode == 2, compared.stdout[-1500:] + compared.stderr[-1500:]
    message = " ".join((compared.stdout + compared.stderr).split())
    assert str(damaged) in message and "corrupt" in message
    assert _sha(reference) == before


@pytest.mark.integration
def test_a_paused_redis_fails_a_read_within_its_deadline(world, own_redis) -> None:
    """Finding 13: a Redis that accepts connections and never answers (SIGSTOP) held a
    request for 38 s: a timeout per view and per retry. The read has one deadline."""
    from feature_repo.flights.requests import FlightRequest
    from feature_repo.run_lock import OnlineStoreUnavailable
    from serving.predictor import Predictor

    settings = Settings(data_dir=world.settings.data_dir, redis_url=own_redis.url)
    predictor = Predictor(settings)
    flight = FlightRequest(**_flight(world))
    try:
        assert len(predictor.score([flight]).probabilities) == 1  # answers while Redis does
        assert own_redis.process is not None
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        try:
            began = time.monotonic()
            with pytest.raises(OnlineStoreUnavailable, match="online store"):
                predictor.score([flight])
            assert time.monotonic() - began < 4.0  # the 2.5 s deadline, plus scheduling
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        assert len(predictor.score([flight]).probabilities) == 1  # and again once it is back
    finally:
        predictor.close()


@pytest.mark.integration
def test_train_attaches_the_reference_profile_before_the_model_appears(world) -> None:
    """The champion was saved by ``train``: its entry names a profile that exists,
    relative to the data dir so that a copied data dir reads its own."""
    from training.registry import get_model

    record = get_model(world.settings, world.champion)
    reference = record.metadata["reference_profile"]
    assert reference and not Path(reference).is_absolute()
    assert (world.settings.data_dir / reference).is_file()


# -- Severe 1: one unreadable model entry ------------------------------------------------------
@pytest.mark.integration
def test_an_unreadable_model_entry_is_skipped_by_every_reader(
    world, broken_entry, service, tmp_path
) -> None:
    before = registry_sums(world)

    listed = run(world, "training", "models", "list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    text = " ".join(listed.stdout.split())
    assert world.champion in text and "champion" in text
    assert f"flight_delay:{BROKEN_VERSION}" in text and "broken" in text
    assert "model.yaml is unreadable" in text

    refused = run(world, "training", "models", "promote", BROKEN_VERSION)
    assert refused.returncode == 1 and "unreadable" in one_line_error(refused)

    from training.registry import get_model

    reference = get_model(world.settings, world.champion).metadata["reference_profile"]
    compared = run(
        world,
        "monitoring",
        "compare",
        "--target",
        str(world.settings.data_dir / reference),
        "--out",
        str(tmp_path / "drift"),
        "--no-html",
    )
    assert compared.returncode == 0, compared.stdout[-2000:] + compared.stderr[-2000:]
    assert "no champion" not in compared.stdout + compared.stderr

    # The service started with the broken entry in the registry, serves and reloads.
    flight = _flight(world)
    served = httpx.post(
        f"{service.url}/predict", json={"flights": [flight]}, headers=HEADERS, timeout=30
    )
    assert served.status_code == 200, served.text
    assert served.json()["model"]["tag"] == world.champion
    reloaded = httpx.post(f"{service.url}/reload", json={}, headers=HEADERS, timeout=30)
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["current"] == world.champion
    assert "skipping unreadable model" in service.log()

    assert registry_sums(world) == before


# -- Findings 13 and 14: the HTTP contract --------------------------------------------------------
MEDIA_TYPES = [
    "text/plain",
    "multipart/form-data; boundary=zz",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
    "application/vnd.bentoml+pickle",
    "application/xml",
]


@pytest.mark.integration
@pytest.mark.parametrize("media", MEDIA_TYPES)
def test_any_body_that_is_not_json_gets_415(world, service, media) -> None:
    flight = _flight(world)
    body = json.dumps({"flights": [flight]})
    if media.startswith("multipart"):
        body = "--zz\r\nnonsense\r\n"
    response = _post(f"{service.url}/predict", body, media)
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["error"]


@pytest.mark.integration
def test_unknown_fields_anywhere_get_400(world, service) -> None:
    flight = _flight(world)
    cases = {
        "/predict": [
            {"flights": [flight], "debug": True},
            {"flights": [dict(flight, gate="B2")]},
        ],
        "/reload": [{"force": True}],
        "/flush": [{"interval": "1h"}],
        "/model": [{"verbose": 1}],
    }
    for route, bodies in cases.items():
        for body in bodies:
            response = _post(f"{service.url}{route}", json.dumps(body), "application/json")
            assert response.status_code == 400, (route, body, response.text)
            assert "extra" in response.text.lower() or "not permitted" in response.text


@pytest.mark.integration
def test_sched_dep_is_an_iso_instant_scored_in_the_origin_time_zone(world, service) -> None:
    flight = _flight(world)
    instant = datetime.fromisoformat(flight["sched_dep"])
    writings = [
        instant.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        instant.isoformat(),
        instant.astimezone(datetime.fromisoformat("2013-01-01T00:00:00+09:00").tzinfo).isoformat(),
    ]
    probabilities = set()
    for written in writings:
        response = httpx.post(
            f"{service.url}/predict",
            json={"flights": [dict(flight, sched_dep=written)]},
            headers=HEADERS,
            timeout=30,
        )
        assert response.status_code == 200, response.text
        probabilities.add(response.json()["predictions"][0]["late_probability"])
    assert len(probabilities) == 1, (writings, probabilities)
    for bad in (
        int(instant.timestamp()),
        instant.replace(tzinfo=None).isoformat(),
        "0001-01-01T00:00:00Z",
        "9999-12-31T00:00:00-04:00",
        instant.date().isoformat(),
    ):
        response = httpx.post(
            f"{service.url}/predict",
            json={"flights": [dict(flight, sched_dep=bad)]},
            headers=HEADERS,
            timeout=30,
        )
        assert response.status_code == 400, (bad, response.text)
        assert "sched_dep" in response.text


@pytest.mark.integration
def test_an_oversized_body_is_refused_before_it_is_read(world, service) -> None:
    big = b'{"flights": [' + b'{"origin": "EWR"},' * 3_000_000 + b"{}]}"  # ~54 MB
    began = time.monotonic()
    try:
        response = _post(f"{service.url}/predict", big, "application/json")
        status = response.status_code
    except httpx.HTTPError:  # the server may close while the client still sends
        status = 413
    assert status == 413
    assert time.monotonic() - began < 5

    def chunks() -> Iterator[bytes]:
        yield b'{"flights": ['
        for _ in range(1000):
            yield b'{"origin": "EWR", "dest": "IAH", "carrier": "UA", "distance": 1},' * 10

    try:
        chunked = httpx.post(
            f"{service.url}/predict",
            content=chunks(),
            headers={**HEADERS, "content-type": "application/json"},
            timeout=30,
        )
        assert chunked.status_code == 413, chunked.text
    except httpx.HTTPError:
        pass  # closed mid-upload after the 413: also a refusal
    small = json.dumps({"flights": [_flight(world)]})
    assert _post(f"{service.url}/predict", small, "application/json").status_code == 200


@pytest.mark.integration
def test_a_body_that_stops_arriving_is_dropped(service) -> None:
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            + f"x-api-key: {API_KEY}\r\n".encode()
            + b"content-length: 500\r\n\r\n"
            + b'{"flights": ['
        )
        began = time.monotonic()
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - began < 5


@pytest.mark.integration
def test_headers_that_never_finish_are_dropped(service) -> None:
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\ncontent-ty")  # and nothing more
        began = time.monotonic()
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - began < 5


@pytest.mark.integration
def test_client_errors_are_logged_once_at_info_on_one_line(world, service) -> None:
    from serving.serving_logs import SERVICE_LOG_NAME

    json_log = world.settings.data_dir / "logs" / SERVICE_LOG_NAME

    def client_errors() -> list[str]:
        text = json_log.read_text() if json_log.exists() else ""
        return [line for line in text.splitlines() if "client error 400" in line]

    earlier = len(client_errors())
    marker = "never-an-airport-xyz"
    response = _post(
        f"{service.url}/predict", json.dumps({"flights": [{"origin": marker}]}), "application/json"
    )
    assert response.status_code == 400
    # The service writes its JSON log itself (it used to be awaited in the text log,
    # where it never appears: 5 s every run).
    deadline = time.monotonic() + 5
    while len(client_errors()) == earlier and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # and whatever it would log after it
    log = service.log()
    lines = client_errors()[earlier:]
    assert lines, log[-2000:]
    assert all('"level": "INFO"' in line.replace('"info"', '"INFO"') for line in lines)
    assert not any("ERROR" in line or '"level": "error"' in line for line in lines), lines
    assert "Traceback" not in log
    assert "Exception on /predict" not in log


@pytest.mark.integration
def test_the_openapi_schema_documents_the_error_responses(service) -> None:
    spec = httpx.get(f"{service.url}/docs.json", headers=HEADERS, timeout=10).json()
    responses = spec["paths"]["/predict"]["post"]["responses"]
    assert {"400", "401", "413", "415", "503"} <= set(responses)
    assert "application/json" in responses["415"]["content"]


# -- The contract, fuzzed from the OpenAPI schema -----------------------------------------------
FUZZ_CASES = 500
FUZZ_MEDIA = [
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "text/plain",
    "text/html",
    "multipart/form-data; boundary=zz",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
    "application/octet-stream",
    "application/vnd.bentoml+pickle",
    "application/x-ndjson",
    "",
]


@pytest.mark.integration
def test_schema_driven_fuzzing_never_gets_a_5xx(service) -> None:
    """Schemathesis cases for every operation in the service's own OpenAPI document
    (valid and schema-violating), each sent as generated or with its content type,
    headers or body swapped for hostile ones."""
    from collections import Counter

    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{service.url}/docs.json", headers=HEADERS)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/reload", "/flush", "/model"}
    cases = st.one_of(
        *(
            op.as_strategy(generation_mode=mode)
            for op in operations
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            # Schemathesis cannot negate an operation without inputs (the GET probes).
            if mode is GenerationMode.POSITIVE or op.method.upper() == "POST"
        )
    )
    header_names = st.sampled_from(["x-debug", "content-encoding", "transfer-encoding", "expect"])
    header_values = st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=20
    )
    variant = st.sampled_from(["as generated", "media type", "raw body", "headers"])
    statuses: list[int] = []
    # One client for all cases (a new one loads the CA bundle: 0.1 s of CPU each, most of
    # this test's time); no keep-alive, so each case still gets a connection of its own.
    client = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))

    @hsettings(
        max_examples=FUZZ_CASES,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(
        case=cases,
        how=variant,
        media=st.sampled_from(FUZZ_MEDIA),
        raw=st.binary(max_size=400),
        extra=st.dictionaries(header_names, header_values, max_size=2),
    )
    def check(case, how, media, raw, extra) -> None:
        if how == "as generated":
            response = case.call(base_url=service.url, headers=HEADERS, timeout=30)
            status, text = response.status_code, response.text
        else:
            body = case.body if isinstance(case.body, bytes) else json.dumps(case.body, default=str)
            headers = dict(HEADERS)
            if how == "media type":
                headers["content-type"] = media
            elif how == "raw body":
                headers["content-type"], body = media or "application/json", raw
            else:
                headers.update(
                    {k: v for k, v in extra.items() if k not in ("transfer-encoding", "expect")}
                )
                headers["content-type"] = "application/json"
            response = client.request(
                case.method.upper(),
                f"{service.url}{case.formatted_path}",
                content=body if case.method.upper() != "GET" else None,
                headers=headers,
            )
            status, text = response.status_code, response.text
        statuses.append(status)
        assert status < 500, (case.method, case.path, how, text[:500])

    with client:
        check()
    print("fuzz statuses:", dict(Counter(statuses)))
    assert len(statuses) >= FUZZ_CASES
    assert 200 in statuses
    assert {400, 415} <= set(statuses)
    assert "Traceback" not in service.log()


# -- Finding 4: the champion's artifact is gone -------------------------------------------------
@pytest.mark.integration
def test_a_champion_without_its_file_is_a_clear_start_up_error(world) -> None:
    artifact = world.models / world.champion.split(":", 1)[1] / "saved_model.pkl"
    aside = artifact.with_name("saved_model.pkl.aside")
    artifact.rename(aside)
    try:
        before = registry_sums(world)
        began = time.monotonic()
        started = cli(world, "serving", "serve", "--port", str(free_port()), timeout=120)
        assert started.returncode == 3
        message = one_line_error(started)
        assert world.champion in message and "saved_model.pkl is missing" in message
        assert time.monotonic() - began < 90
        listed = run(world, "training", "models", "list")
        assert listed.returncode == 0
        text = " ".join(listed.stdout.split())
        assert f"{world.champion} (champion, broken): " in text
        assert "saved_model.pkl is missing" in text
        assert registry_sums(world) == before
    finally:
        aside.rename(artifact)


# -- Finding 6: a model entry without its reference profile -------------------------------------
@pytest.mark.integration
def test_a_model_without_its_reference_profile_is_marked_and_never_promoted(world) -> None:
    from training.registry import get_model, load_pipeline, save_model

    champion = get_model(world.settings, world.champion)
    # What a train killed between saving and profiling left, before the fix.
    metadata = {**champion.metadata, "reference_profile": ""}
    half = save_model(world.settings, load_pipeline(world.settings, world.champion), metadata)
    try:
        before = registry_sums(world)
        listed = run(world, "training", "models", "list")
        text = " ".join(listed.stdout.split())
        assert f"{half.tag} (candidate, broken): no reference profile is attached" in text
        # Not even by force: what it lacks, monitoring would need.
        refused = run(
            world, "training", "models", "promote", half.tag, "--force", "--reason", "fault test"
        )
        assert refused.returncode == 1
        assert "incomplete" in one_line_error(refused)
        assert registry_sums(world) == before
    finally:
        shutil.rmtree(half.path, ignore_errors=True)


@pytest.mark.integration
def test_an_empty_api_key_is_a_start_up_error(world, tmp_path) -> None:
    from serving import process as service_process

    # `bentoml serve` itself exits too, rather than serving without authentication; it
    # starts first, so that the serve command's refusal runs while it starts up.
    log_path = tmp_path / "empty-key.log"
    child = service_process.start(
        world.settings, free_port(), log_path, workers=1, extra_env={"FEASTLINE_API_KEY": ""}
    )
    try:
        refused = cli(world, "serving", "serve", "--port", str(free_port()), FEASTLINE_API_KEY="")
        assert refused.returncode == 1
        assert "FEASTLINE_API_KEY is set but empty" in one_line_error(refused)
        try:
            child.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail("bentoml serve kept running with an empty API key")
    finally:
        service_process.stop(child)
    assert child.returncode != 0
    assert "FEASTLINE_API_KEY is set but empty" in log_path.read_text()


# -- Finding 5: workers die with their parent -------------------------------------------------
def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    frontier.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.integration
def test_sigkill_of_the_serve_command_takes_its_workers_down(serve_command, service) -> None:
    """Last in this file: it kills the module's service, which the serve command started."""
    child = serve_command.process
    port = int(service.url.rsplit(":", 1)[1])
    family = _descendants(child.pid)
    assert len(family) >= 2, family  # bentoml serve and at least one worker
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = [p for p in family if _alive(p)]
    assert not survivors, f"orphaned after SIGKILL: {survivors}"
    assert _port_free(port)  # a restart binds it again, as uvicorn does
