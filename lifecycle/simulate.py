"""The loop on the simulated clock: ``python -m lifecycle simulate --start D --end D``.

Every hour of simulated time (the replay's tick), in this order:

1. the clock moves to the tick, and the controller ticks (:class:`Controller`):
   features up to now, and at the daily check time monitoring and decisions;
2. the baseline arms retrain when their own policy says so (the naive monthly
   policy by default), without touching the registry's stages or the rollout. Such a
   retrain runs in a thread beside the replay (see :class:`Arm`): the loop's own retrains
   stay in the tick, as a deployment's would;
3. the flights whose prediction time falls in this hour are scored by
   :class:`serving.predictor.Predictor`, the service's own scoring code, in
   process for speed, with the champion and any challenger the rollout names
   (it reloads after each decision, as the service's registry watch does); the
   served rows go to the same logs, through the service's own
   :class:`ServedDataLogger`;
4. the baseline arms' models score the very same feature rows
   (:func:`serving.predictor.model_probabilities`), logged under the role
   ``counterfactual``; while an arm retrains, its rows wait and are scored by the new
   model once it is registered.

Labels arrive as flights land: the raw layer's arrivals become knowable at
landing, and the controller's monitoring reads only what is knowable at now.

What each flight was answered with, by which model, and what every arm said,
goes to the ledger (``<data>/lifecycle/ledger/``, a Parquet file per day) from
which the timeline report is drawn.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa

from feature_repo.atomic_io import write_parquet
from feature_repo.clock import Clock
from feature_repo.settings import Settings
from feature_repo.structured_logging import info_as_debug
from lifecycle.controller import (
    Controller,
    Trainer,
    fitted_through,
    lifecycle_dir,
    retrain_triggers,
    train_challenger,
)
from lifecycle.policy import Policy
from lifecycle.state import read_state, write_state

log = logging.getLogger(__name__)

COUNTERFACTUAL = "counterfactual"
STATIC = "static"


class SimulationError(RuntimeError):
    """The data dir cannot run this simulation (no champion, a clock already past the start)."""


@dataclass
class PhaseSeconds:
    features: float = 0.0
    monitoring: float = 0.0
    training: float = 0.0
    serving: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 1) for k, v in self.__dict__.items()}


@dataclass
class SimulationRun:
    start: date
    end: date
    policy: str
    baselines: dict[str, str]  # arm -> policy name
    ticks: int = 0
    flights: int = 0
    failed_requests: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    seconds: PhaseSeconds = field(default_factory=PhaseSeconds)
    wall_seconds: float = 0.0
    # The baseline arms' retrains, beside the replay: not a phase (the phases add up to
    # the wall time); the replay's waits for them are in ``seconds.training``.
    baseline_retrain_seconds: float = 0.0


def ledger_dir(settings: Settings) -> Path:
    return lifecycle_dir(settings) / "ledger"


def hourly_ticks(start: date, end: date, lead: timedelta, step: timedelta) -> list[datetime]:
    """Every tick from the one predicting the first departure of ``start`` to the end of ``end``."""
    first = datetime.combine(start, datetime.min.time(), tzinfo=UTC) - lead
    last = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    ticks, tick = [], first
    while tick < last:
        ticks.append(tick)
        tick += step
    return ticks


@dataclass
class Unscored:
    """Flights an arm scores once its retrain is done: what it would have scored them on."""

    flights: list[Any]
    features: dict[str, list[Any]]
    served_at: datetime
    rows: list[dict[str, Any]]  # their ledger rows, completed then


class Arm:
    """A baseline that retrains by its own policy and only scores (never serves).

    Nothing the loop does waits for a baseline, so its retrain runs in a thread beside
    the replay (the fit and the training set's queries run outside the GIL): the flights
    served meanwhile wait in ``unscored`` and the new model scores them once registered,
    the very rows and probabilities a retrain inside the tick would have given.
    """

    def __init__(self, name: str, policy: Policy | None, tag: str) -> None:
        self.name, self.policy, self.tag = name, policy, tag
        self.model: Any = None
        self.last_retrain: datetime | None = None
        self.fitted_through: datetime | None = None
        self.retrain: Future[str] | None = None
        self.retrain_started = 0.0
        self.unscored: list[Unscored] = []

    def due(self, now: datetime) -> list[str]:
        """The arm's triggers at ``now``: its schedule and age (it has no live monitoring)."""
        if self.policy is None:
            return []
        return retrain_triggers(
            self.policy, now, self.fitted_through, self.last_retrain, False, False
        )


def simulate(
    settings: Settings,
    policy: Policy,
    start: date,
    end: date,
    *,
    baselines: dict[str, Policy] | None = None,
    step: timedelta = timedelta(hours=1),
    trainer: Trainer = train_challenger,
    on_tick: Callable[[int, int, datetime], None] | None = None,
    serve_url: str | None = None,
    headers: dict[str, str] | None = None,
) -> SimulationRun:
    """Run the loop from ``start`` to ``end`` (inclusive days).

    With ``serve_url`` the flights go to a running service over HTTP instead (``/predict``,
    ``/flush`` before each check, ``/reload`` after each decision); it logs what it serves
    itself, and the baseline arms, which score the features of each request, do not run.
    A request reaches one worker, so the service should run one.
    """
    from monitoring.registry import RegistryLookupError, champion
    from serving.champion import load_champion
    from serving.predictor import Predictor
    from serving.served_data import ServedDataLogger

    if end < start:
        raise SimulationError(f"--end {end} is before --start {start}")
    try:
        initial = champion(settings)
    except RegistryLookupError as err:
        raise SimulationError(
            f"{err}: the loop needs a champion to start from (make simulate trains one)"
        ) from None
    baselines = {} if serve_url else (baselines or {})
    run = SimulationRun(start, end, policy.name, {k: v.name for k, v in baselines.items()})
    requests = importlib.import_module(f"{settings.dataset_module}.requests")
    flight_model = requests.request_model(*requests.known_codes(settings.raw_dir))
    lead = settings.prediction_lead
    by_tick: dict[datetime, list[Any]] = defaultdict(list)
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        for tick, due in _prediction_ticks(requests, day, lead, step).items():
            by_tick[tick].extend(due)
    ticks = hourly_ticks(start, end, lead, step)

    state = read_state(settings)
    arms: dict[str, Arm] = {}
    if serve_url is None:
        arms[STATIC] = Arm(STATIC, None, state.counterfactuals.get(STATIC, initial.tag))
    for name, arm_policy in baselines.items():
        arms[name] = Arm(name, arm_policy, state.counterfactuals.get(name, initial.tag))
    for arm in arms.values():
        arm.fitted_through = fitted_through(_metadata(settings, arm.tag))
        arm.model = load_champion(settings, arm.tag)
    state.counterfactuals = {name: arm.tag for name, arm in arms.items()}
    if state.last_check_day is None:
        # The loop's first check is on the first simulated day, not at the tick before it.
        state.last_check_day = (start - timedelta(days=1)).isoformat()
    write_state(settings, state)

    clock = Clock(settings)
    controller = Controller(settings, policy, trainer=trainer)
    os.environ.setdefault("FEASTLINE_PROFILE_INTERVAL", "1d")
    served = None if serve_url else ServedDataLogger(settings, writer_id="simulation")
    client = httpx.Client(base_url=serve_url, timeout=30, headers=headers) if serve_url else None
    predictor: Predictor | None = None
    ledger: dict[date, list[dict[str, Any]]] = defaultdict(list)
    beside = ThreadPoolExecutor(max_workers=1, thread_name_prefix="baseline-retrain")

    def adopt(arm: Arm, wait: bool) -> None:
        """The arm's retrained model: it takes over, and scores the rows that waited."""
        assert arm.retrain is not None and served is not None
        if not wait and not arm.retrain.done():
            return
        arm.tag = arm.retrain.result()  # a failed retrain fails the run, as in the tick
        arm.retrain = None
        run.baseline_retrain_seconds += time.perf_counter() - arm.retrain_started
        arm.model = load_champion(settings, arm.tag)
        arm.fitted_through = fitted_through(_metadata(settings, arm.tag))
        state = read_state(settings)
        state.counterfactuals[arm.name] = arm.tag
        write_state(settings, state)
        for waiting in arm.unscored:
            _score_arm(served, arm, waiting)
        arm.unscored = []

    began = time.perf_counter()
    # Each tick's ingest and materialization log at DEBUG, as in a serving replay: the JSON
    # log file has them, the console the progress bar and the decisions.
    routine = info_as_debug(
        "feature_repo.materialize",
        "feature_repo.pipeline",
        "feature_repo.feature_build",
        "feature_repo.raw_layer",
        "serving.served_data",
    )
    try:
        routine.__enter__()  # left in the finally below
        for done, tick in enumerate(ticks, start=1):
            clock.set(tick)
            checking = controller.check_due(tick)
            started = time.perf_counter()  # the check's wait for the logs is monitoring's
            if checking and served is not None:
                served.flush()  # the check reads what was served up to now
            elif checking and client is not None:
                # The service writes its logs every 30 s of wall time, and a replay runs
                # days of simulated time in that: the check must see what was served.
                client.post("/flush").raise_for_status()
            result = controller.tick(tick)
            spent = time.perf_counter() - started
            run.seconds.features += result.seconds_features
            run.seconds.training += result.seconds_training
            run.seconds.monitoring += spent - result.seconds_features - result.seconds_training
            run.decisions += [d.to_dict() for d in result.decisions]
            started = time.perf_counter()
            for arm in arms.values() if checking else ():  # the arms decide when the loop does
                if fired := arm.due(tick):
                    if arm.retrain is not None:  # one retrain at a time per arm
                        adopt(arm, wait=True)
                    arm.last_retrain = tick
                    arm.retrain_started = time.perf_counter()
                    arm.retrain = beside.submit(
                        _train_arm, settings, arm.name, arm.policy,
                        _metadata(settings, arm.tag), tick, "; ".join(fired), trainer,
                    )  # fmt: skip
            run.seconds.training += time.perf_counter() - started
            started = time.perf_counter()
            due = by_tick.get(tick, [])
            if client is not None:
                if result.decisions:
                    client.post("/reload").raise_for_status()
                run.failed_requests += _serve_http(client, due, ledger, tick)
                run.flights += len(due)
            else:
                assert served is not None
                if predictor is None:
                    predictor = Predictor(settings)
                elif result.decisions:
                    predictor.reload()
                if due:
                    flights = [flight_model(**f) for f in due]
                    _serve(predictor, served, flights, arms, ledger)
                    run.flights += len(flights)
            for arm in arms.values():
                if arm.retrain is not None:
                    adopt(arm, wait=False)  # once it is done
            last_of_day = done == len(ticks) or ticks[done].date() != tick.date()
            if last_of_day and not any(arm.unscored for arm in arms.values()):
                _write_ledger(settings, ledger)  # whole days, every arm's column filled
            run.seconds.serving += time.perf_counter() - started
            run.ticks = done
            if on_tick:
                on_tick(done, len(ticks), tick)
        started = time.perf_counter()
        for arm in arms.values():
            if arm.retrain is not None:
                adopt(arm, wait=True)
        run.seconds.training += time.perf_counter() - started
    finally:
        beside.shutdown(wait=True, cancel_futures=True)
        routine.__exit__(None, None, None)
        _write_ledger(settings, ledger)
        if served is not None:
            served.close()
        if predictor is not None:
            predictor.close()
        if client is not None:
            client.close()
    run.wall_seconds = time.perf_counter() - began
    return run


def _metadata(settings: Settings, tag: str) -> dict[str, Any]:
    from monitoring.registry import model_info

    return model_info(settings, tag).metadata


def _prediction_ticks(
    requests: Any, day: date, lead: timedelta, step: timedelta
) -> dict[datetime, list[dict[str, Any]]]:
    from serving.replay import prediction_ticks

    return prediction_ticks(requests.scheduled_flights(day), requests.EVENT_TIME_FIELD, lead, step)


def _train_arm(
    settings: Settings,
    name: str,
    policy: Policy | None,
    metadata: dict[str, Any],
    now: datetime,
    trigger: str,
    trainer: Trainer,
) -> str:
    """A baseline's retrain: registered as a candidate, never staged or rolled out."""
    assert policy is not None
    origin = {
        "by": "lifecycle-simulation",
        "arm": name,
        "policy": policy.name,
        "trigger": trigger,
        "now": now.isoformat(),
    }
    tag = trainer(settings, policy, now, metadata, origin)
    log.info("baseline retrained", extra={"arm": name, "tag": tag, "trigger": trigger})
    return tag


def _serve(
    predictor: Any,
    served: Any,
    flights: list[Any],
    arms: dict[str, Arm],
    ledger: dict[date, list[dict[str, Any]]],
) -> None:
    """Score as the service does (``/predict``), log as it does, and score the arms alike."""
    for i in range(0, len(flights), 1000):  # the service's request cap
        chunk = flights[i : i + 1000]
        scored = predictor.score(chunk)
        served.log_scored(chunk, scored)
        challenger = scored.scores[1] if len(scored.scores) > 1 else None
        rows = []
        for j, flight in enumerate(chunk):
            by = scored.answered_by[j]
            rows.append(
                {
                    "flight_id": flight.flight_id,
                    "served_at": scored.served_at,
                    "probability": scored.probabilities[j],
                    "model_tag": by.model.tag,
                    "role": by.role,
                    "challenger_tag": challenger.model.tag if challenger else None,
                    "challenger_role": challenger.role if challenger else None,
                }
            )
        waiting = Unscored(chunk, scored.features, scored.served_at, rows)
        for arm in arms.values():
            if arm.retrain is not None:
                arm.unscored.append(waiting)  # scored by the model being trained
            else:
                _score_arm(served, arm, waiting)
        ledger[scored.served_at.date()].extend(rows)


def _score_arm(served: Any, arm: Arm, rows: Unscored) -> None:
    """``arm``'s model on the rows the champion was served, into the logs and the ledger."""
    from serving.predictor import model_probabilities

    probabilities = model_probabilities(arm.model, rows.features, len(rows.flights))
    served.log(
        rows.flights,
        rows.features,
        arm.model.model_inputs,
        probabilities,
        rows.served_at,
        arm.model.tag,
        role=COUNTERFACTUAL,
        profile=False,  # it scores the rows the champion's profile already holds
    )
    for row, probability in zip(rows.rows, probabilities, strict=True):
        row[f"{arm.name}_probability"] = probability
        row[f"{arm.name}_tag"] = arm.model.tag


def _serve_http(
    client: httpx.Client,
    flights: list[dict[str, Any]],
    ledger: dict[date, list[dict[str, Any]]],
    served_at: datetime,
) -> int:
    """Send ``flights`` to ``/predict`` in requests of at most 1,000; the failed requests."""
    failed = 0
    for i in range(0, len(flights), 1000):
        chunk = flights[i : i + 1000]
        response = client.post("/predict", json={"flights": chunk})
        if response.status_code != 200:
            failed += 1
            log.warning(
                "request failed",
                extra={"status": response.status_code, "body": response.text[:200]},
            )
            continue
        body = response.json()
        challenger = body.get("challenger") or {}
        for answer in body["predictions"]:
            ledger[served_at.date()].append(
                {
                    "flight_id": answer["flight_id"],
                    "served_at": served_at,
                    "probability": answer["late_probability"],
                    "model_tag": answer["model_tag"],
                    "role": answer["role"],
                    "challenger_tag": challenger.get("tag"),
                    "challenger_role": challenger.get("role"),
                }
            )
    return failed


def _write_ledger(settings: Settings, ledger: dict[date, list[dict[str, Any]]]) -> None:
    """Write the days held so far, each whole (temp file + rename), and forget them; a day
    written twice (the run ended inside it, then resumed) gets a second part."""
    folder = ledger_dir(settings)
    for day in list(ledger):
        rows = ledger.pop(day)
        if not rows:
            continue
        part = 0
        while (path := folder / f"day={day.isoformat()}-{part}.parquet").exists():
            part += 1
        table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
        write_parquet(table, path)


def read_ledger(settings: Settings) -> pd.DataFrame:
    files = sorted(ledger_dir(settings).glob("day=*.parquet"))
    if not files:
        return pd.DataFrame()
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return frame.drop_duplicates("flight_id", keep="last")
