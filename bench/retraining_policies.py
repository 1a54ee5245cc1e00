"""Retraining policies measured offline: monthly ROC-AUC, July-December, against static and naive.

    .venv/bin/python bench/retraining_policies.py [--data-dir DIR] [--policies a,b] [--boot 500]
        [--served-lead MINUTES] [--phases 0,3,6,9]

The groundwork for the continuous-training loop's default policy (issue 14):
which schedule, window, weighting and features beat a model left alone, and
beat naive monthly retraining, measured on point-in-time sets of the bundled
year rather than assumed.

Setup, in a data dir of its own (default ``/tmp/feastline-bench-retraining``,
never ``./data``): ``python -m feature_repo ingest --through 2013-12-31`` and
``apply``, then the full-year training set through ``training.trainset.
load_or_build`` (the ``build-dataset`` code path), stored and reused by later
runs. Features are point-in-time at each flight's prediction time, so they do
not depend on when the set is built; what does is which labels exist. Each
retrain at instant ``t`` therefore trains only on the flights whose label was
knowable before ``t``: ``training.dataset.entity_rows(..., as_of=t)``, the
same rows ``build-dataset --as-of t`` would hold.

Policies (each model serves the flights whose prediction time falls between
its retrain instant and the next one):

- ``static``: tuned on January-April with the default grid and validated on
  May, as ``make run`` does; never retrained. Its hyperparameters are the
  "champion's" that the other policies reuse unless they search.
- ``naive``: at the start of each month, all labels knowable by then.
- variations: recency weighting (half-lives), ``sched_month`` dropped, a
  sliding window, every two weeks, and a full grid search at each retrain.

``--phases`` runs each scheduled policy again with its retrains shifted by so many
days: which day of the cycle a retrain falls on moves the headline, and a
bootstrap over flights cannot show it (the last table: each policy's gain over
its phases).

For each policy against static and against naive: the mean of the monthly
ROC-AUCs over July-December and a paired bootstrap 95% CI, flights resampled
within each month (seeded). Also the seconds of one retrain at 1x data with
reused hyperparameters (the loop's target: at most 60 s). Not run by the
tests; the seconds depend on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: import this checkout's packages

from feature_repo.raw_layer import RawLayer  # noqa: E402
from feature_repo.settings import Settings  # noqa: E402
from model_registry.sklearn_compat import fast_weighted_binning  # noqa: E402
from monitoring.paired import mean_group_auc_difference  # noqa: E402
from training.dataset import TrainingSet, entity_rows  # noqa: E402
from training.model import (  # noqa: E402
    ModelInputs,
    fit_pipeline,
    model_inputs,
    predict_proba,
    recency_weights,
)
from training.train import TrainConfig, fit_and_evaluate, kept_features, tune  # noqa: E402
from training.trainset import load_or_build  # noqa: E402

YEAR_START, YEAR_END = date(2013, 1, 1), date(2013, 12, 31)
STATIC_FIT_END, STATIC_VALID_END = date(2013, 4, 30), date(2013, 5, 31)
EVAL_MONTHS = [7, 8, 9, 10, 11, 12]
TIME_COLUMN = "sched_dep_ts"
PREDICTION_TIME = "event_timestamp"
DEFAULT_DATA_DIR = Path("/tmp/feastline-bench-retraining")
SEED = 42
console = Console(width=max(Console().width, 150))


@dataclass(frozen=True)
class Policy:
    name: str
    every_days: int | None = None  # None: at the first of each month
    window_days: int | None = None  # None: expanding (everything knowable)
    half_life_days: float | None = None
    drop: tuple[str, ...] = ()
    search: bool = False
    # Hyperparameters that replace the champion's (a bigger model for a bigger window).
    params: tuple[tuple[str, Any], ...] = ()
    # Days between a retrain and the day its model starts to serve: the loop's shadow.
    delay_days: int = 0
    # Days before a retrain left out of its fit: the loop's validation days.
    holdout_days: int = 0
    # The schedule's phase: after June 1, retrains fall on June 1 + offset + k * every.
    offset_days: int = 0
    note: str = ""

    def instants(self) -> list[pd.Timestamp]:
        """Retrain instants from June 1 on; the last one before July serves July's first days."""
        first = pd.Timestamp("2013-06-01", tz="UTC")
        if self.every_days is None:
            return [pd.Timestamp(f"2013-{m:02d}-01", tz="UTC") for m in range(6, 13)]
        stop = pd.Timestamp("2014-01-01", tz="UTC")
        shifted = first + pd.Timedelta(days=self.offset_days)
        scheduled = pd.date_range(shifted, stop, freq=f"{self.every_days}D", inclusive="left")
        return sorted({first, *scheduled})

    def at_phase(self, offset_days: int) -> Policy:
        """The same policy on a schedule shifted by ``offset_days`` (named ``name@offset``)."""
        if self.every_days is None or offset_days == 0:
            return self
        return replace(self, name=f"{self.name}@{offset_days}", offset_days=offset_days)


# The loop's default before session 12, offline: its drift trigger fired at nearly every
# check, so it retrained as soon as the 3-day shadow and the 7-day watch allowed, every 11
# days. ``every7_...`` below is today's weekly default (a 3-day watch).
LOOP_TWIN = Policy(
    "every11_hl90_no_month_shadow3_holdout3",
    every_days=11,
    half_life_days=90,
    drop=("sched_month",),
    delay_days=3,
    holdout_days=3,
    note="the old default offline: every 11 d, 3 d held out, serving 3 d later",
)

POLICIES = [
    Policy("naive", note="monthly, expanding, reused params"),
    Policy("hl30", half_life_days=30, note="naive + recency weights, half-life 30 d"),
    Policy("hl90", half_life_days=90, note="naive + recency weights, half-life 90 d"),
    Policy("no_month", drop=("sched_month",), note="naive without sched_month"),
    Policy("slide90", window_days=90, note="monthly, sliding 90-day window"),
    Policy("biweekly", every_days=14, note="every 14 days, expanding"),
    Policy("biweekly_hl90", every_days=14, half_life_days=90, note="every 14 d, half-life 90 d"),
    Policy(
        "biweekly_hl90_no_month",
        every_days=14,
        half_life_days=90,
        drop=("sched_month",),
        note="every 14 d, half-life 90 d, no sched_month",
    ),
    Policy("search", search=True, note="naive + full grid search at each retrain"),
    Policy(
        "weekly_hl90_no_month",
        every_days=7,
        half_life_days=90,
        drop=("sched_month",),
        note="every 7 d, half-life 90 d, no sched_month",
    ),
    Policy(
        "weekly_hl60_no_month",
        every_days=7,
        half_life_days=60,
        drop=("sched_month",),
        note="every 7 d, half-life 60 d, no sched_month",
    ),
    Policy(
        "biweekly_hl90_no_month_shadow3",
        every_days=14,
        half_life_days=90,
        drop=("sched_month",),
        delay_days=3,
        note="every 14 d, half-life 90 d, no sched_month, serving 3 d later",
    ),
    replace(
        LOOP_TWIN,
        name="biweekly_hl90_no_month_shadow3_holdout3",
        every_days=14,
        note="... and the last 3 days held out of the fit",
    ),
    replace(
        LOOP_TWIN,
        name="biweekly_hl90_no_month_shadow1_holdout1",
        every_days=14,
        delay_days=1,
        holdout_days=1,
        note="every 14 d, hl 90 d, no sched_month, 1 d held out, serving 1 d later",
    ),
    LOOP_TWIN,
    replace(
        LOOP_TWIN,
        name=f"{LOOP_TWIN.name}_500",
        params=(("max_iter", 500),),
        note="... with 500 trees instead of the champion's",
    ),
    replace(
        LOOP_TWIN,
        name="every11_no_month_shadow3_holdout3",
        half_life_days=None,
        note="... without recency weights",
    ),
    replace(
        LOOP_TWIN,
        name="every7_hl90_no_month_shadow3_holdout3",
        every_days=7,
        note="the default offline: every 7 d, 3 d held out, serving 3 d later",
    ),
    replace(
        LOOP_TWIN,
        name="every11_hl60_no_month_shadow3_holdout3",
        half_life_days=60,
        note="... with a 60-day half-life",
    ),
    Policy(
        "naive_big",
        params=(("max_iter", 500), ("learning_rate", 0.05), ("max_leaf_nodes", 31)),
        note="naive with 500 x 31-leaf trees",
    ),
    Policy(
        "biweekly_hl90_no_month_big",
        every_days=14,
        half_life_days=90,
        drop=("sched_month",),
        params=(("max_iter", 500), ("learning_rate", 0.05), ("max_leaf_nodes", 31)),
        note="every 14 d, half-life 90 d, no sched_month, 500 x 31-leaf trees",
    ),
]


@dataclass
class Scored:
    policy: str
    proba: np.ndarray  # over the evaluation rows, in their order
    retrains: int
    fit_seconds: list[float] = field(default_factory=list)


# -- setup --------------------------------------------------------------------------
def prepare(data_dir: Path) -> Settings:
    """Ingest the whole year and apply the repo in ``data_dir`` unless already done."""
    settings = Settings.from_env(data_dir=data_dir)
    watermark = RawLayer(settings.raw_dir).watermark() if settings.raw_dir.exists() else None
    watermark_day = watermark.date() if isinstance(watermark, datetime) else watermark
    if watermark_day is None or watermark_day < YEAR_END or not settings.feast_dir.exists():
        env = dict(os.environ, FEASTLINE_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT))
        for argv in (
            ["-m", "feature_repo", "ingest", "--through", YEAR_END.isoformat()],
            ["-m", "feature_repo", "apply"],
        ):
            with console.status(f"setup: {' '.join(argv[1:])}"):
                subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, check=True)
    return settings


def knowable_ids(settings: Settings, instant: pd.Timestamp) -> set[Any]:
    """Flights whose label was knowable before ``instant``: ``build-dataset --as-of`` rows."""
    as_of = instant.to_pydatetime().astimezone(UTC)
    last_day = (instant - pd.Timedelta(days=1)).date()
    rows = entity_rows(settings, YEAR_START, last_day, as_of=as_of)
    return set(rows["flight_id"])


# -- fitting ------------------------------------------------------------------------
def static_champion(frame: pd.DataFrame, manifest: dict[str, Any], ids: set[Any]) -> Any:
    """January-April tuned, May validated: what `make run` trains and promotes."""
    window = frame[frame["flight_id"].isin(ids)].reset_index(drop=True)
    config = TrainConfig(YEAR_START, STATIC_FIT_END, STATIC_VALID_END, seed=SEED)
    return fit_and_evaluate(TrainingSet(manifest=manifest, loaded=window), config)


def retrain(
    policy: Policy,
    frame: pd.DataFrame,
    ids: set[Any],
    instant: pd.Timestamp,
    features: list[str],
    label: str,
    params: dict[str, Any],
) -> tuple[Any, ModelInputs, float]:
    fit_end = instant.normalize() - pd.Timedelta(days=policy.holdout_days)
    rows = frame[frame["flight_id"].isin(ids) & (frame[TIME_COLUMN] < fit_end)]
    if policy.window_days is not None:
        rows = rows[rows[TIME_COLUMN] >= instant - pd.Timedelta(days=policy.window_days)]
    rows = rows.reset_index(drop=True)
    inputs = model_inputs(rows, kept_features(features, policy.drop), label)
    started = time.perf_counter()
    if policy.search:
        # The training package's own search: time-ordered CV over the default grid.
        config = TrainConfig(YEAR_START, instant.date() - timedelta(days=1), YEAR_END, seed=SEED)
        params, _, _ = tune(rows, inputs, label, config)
    weights = (
        None
        if policy.half_life_days is None
        else recency_weights(rows[TIME_COLUMN], instant, policy.half_life_days)
    )
    with fast_weighted_binning():  # the bin edges the loop's fit finds, in a tenth of the time
        pipeline = fit_pipeline(inputs, params, SEED, rows, label, sample_weight=weights)
    return pipeline, inputs, time.perf_counter() - started


def score_policy(
    policy: Policy,
    frame: pd.DataFrame,
    evaluation: pd.DataFrame,
    ids_at: dict[pd.Timestamp, set[Any]],
    features: list[str],
    label: str,
    params: dict[str, Any],
) -> Scored:
    instants = policy.instants()
    delay = pd.Timedelta(days=policy.delay_days)
    params = {**params, **dict(policy.params)}
    served_from = evaluation[PREDICTION_TIME]
    proba = np.full(len(evaluation), np.nan)
    scored = Scored(policy.name, proba, 0)
    for i, instant in enumerate(instants):
        until = (
            instants[i + 1] + delay
            if i + 1 < len(instants)
            else pd.Timestamp.max.tz_localize("UTC")
        )
        # The first model serves from June on; a later one from its retrain plus the delay.
        begins = instant + delay if i else instant
        serves = ((served_from >= begins) & (served_from < until)).to_numpy()
        if not serves.any():
            continue
        pipeline, inputs, seconds = retrain(
            policy, frame, ids_at[instant], instant, features, label, params
        )
        proba[serves] = predict_proba(pipeline, evaluation[serves], inputs.columns)
        scored.retrains += 1
        scored.fit_seconds.append(seconds)
        console.print(f"  {policy.name}: retrain at {instant.date()} in {seconds:.1f}s")
    if np.isnan(proba).any():
        raise RuntimeError(f"{policy.name}: {int(np.isnan(proba).sum())} flights left unscored")
    return scored


def staler_rows(settings: Settings, evaluation: pd.DataFrame, lead_minutes: int) -> pd.DataFrame:
    """The same flights with features as of ``lead_minutes`` before departure.

    A replay scores each flight at the last tick before its prediction time, so with
    a 2-hour step its features are up to 2 hours older than the training set's (1 hour
    on average). Models are fitted on the usual set and scored on both; the prediction
    time that decides which model serves a flight stays the fresh one.
    """
    lagged = Settings.from_env(
        data_dir=settings.data_dir, prediction_lead=timedelta(minutes=lead_minutes)
    )
    stale, _ = load_or_build(lagged, YEAR_START, YEAR_END)
    rows = stale.frame.set_index("flight_id").loc[evaluation["flight_id"]].reset_index()
    rows[PREDICTION_TIME] = evaluation[PREDICTION_TIME].to_numpy()
    return rows[evaluation.columns]


# -- cache: each policy's scores, so runs can split the policies and be combined -----
def cache_path(data_dir: Path, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    return data_dir / "bench-retraining" / f"{key['policy']}-{digest[:12]}.npz"


def cached(path: Path, rows: int) -> Scored | None:
    if not path.exists():
        return None
    with np.load(path) as stored:
        if len(stored["proba"]) != rows:
            return None
        return Scored(
            str(stored["policy"]),
            stored["proba"],
            int(stored["retrains"]),
            list(stored["fit_seconds"]),
        )


def store(path: Path, scored: Scored) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp.npz")
    np.savez(
        partial,
        policy=scored.policy,
        proba=scored.proba,
        retrains=scored.retrains,
        fit_seconds=np.asarray(scored.fit_seconds, dtype=float),
    )
    partial.replace(path)  # whole or absent


# -- statistics ---------------------------------------------------------------------
def paired_bootstrap(
    months: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray, boot: int, seed: int
) -> tuple[float, float, float]:
    """Mean over months of AUC(a) - AUC(b), and a 95% CI: flights resampled within months."""
    return mean_group_auc_difference(months, y, a, b, boot, seed)


# -- main ---------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument(
        "--policies",
        default=",".join(p.name for p in POLICIES),
        help=f"comma-separated, from: {', '.join(p.name for p in POLICIES)}",
    )
    parser.add_argument("--boot", type=int, default=500, help="bootstrap replicates")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads per fit")
    parser.add_argument(
        "--served-lead",
        type=int,
        metavar="MINUTES",
        help="also score every model on features as of this long before departure "
        "(180: what a replay with a 2-hour step serves on average) and print both",
    )
    parser.add_argument(
        "--phases",
        default="0",
        help="comma-separated day offsets: each scheduled policy is also run with its "
        "retrains shifted by each (named policy@offset), and a table sums up the phases",
    )
    parser.add_argument(
        "--score-only",
        action="store_true",
        help="score and cache the policies, print no tables (to split a run across processes)",
    )
    args = parser.parse_args()
    known = {p.name: p for p in POLICIES}
    chosen = [name.strip() for name in args.policies.split(",") if name.strip()]
    if unknown := [name for name in chosen if name not in known]:
        parser.error(f"unknown policies {unknown}; choose from {sorted(known)}")
    try:
        phases = [int(k) for k in args.phases.split(",") if k.strip()]
    except ValueError:
        parser.error(f"--phases takes whole days, comma-separated, not {args.phases!r}")
    for name in list(chosen):
        for offset in phases:
            shifted = known[name].at_phase(offset)
            if shifted.name not in known:
                known[shifted.name] = shifted
                chosen.append(shifted.name)
    if args.data_dir.resolve() == (ROOT / "data").resolve():
        parser.error("use a data dir of the bench's own, not ./data")

    settings = prepare(args.data_dir)
    with console.status("full-year training set (built once, then reused)"):
        started = time.perf_counter()
        training_set, reused = load_or_build(settings, YEAR_START, YEAR_END)
        frame = training_set.frame
    console.print(
        f"training set {training_set.path} ({len(frame):,} rows, "
        f"{'reused' if reused else 'built'} in {time.perf_counter() - started:.0f}s)"
    )
    manifest, label = training_set.manifest, training_set.manifest["label"]
    features = list(manifest["features"])
    times = frame[TIME_COLUMN]
    evaluation = frame[times >= pd.Timestamp("2013-07-01", tz="UTC")].reset_index(drop=True)
    months = evaluation[TIME_COLUMN].dt.month.to_numpy()
    y = evaluation[label].to_numpy()
    fresh_rows = len(evaluation)
    if args.served_lead is not None:
        evaluation = pd.concat([evaluation, staler_rows(settings, evaluation, args.served_lead)])
        evaluation = evaluation.reset_index(drop=True)

    instants = sorted({i for name in chosen for i in known[name].instants()})
    june = pd.Timestamp("2013-06-01", tz="UTC")
    with console.status("knowable labels at each retrain instant"):
        ids_at = {i: knowable_ids(settings, i) for i in {*instants, june}}

    results: dict[str, Scored] = {}
    base_key = {"fingerprint": manifest["fingerprint"], "seed": SEED, "version": 1}
    if args.served_lead is not None:
        base_key["served_lead"] = args.served_lead
    static_key = {"policy": "static", **base_key}
    static_params = cache_path(args.data_dir, static_key).with_suffix(".params.json")
    with threadpool_limits(limits=args.threads, user_api="openmp"):
        static = cached(cache_path(args.data_dir, static_key), len(evaluation))
        if static is None or not static_params.exists():
            with console.status("static: tuning on January-April (default grid)"):
                started = time.perf_counter()
                champion = static_champion(frame, manifest, ids_at[june])
                seconds = time.perf_counter() - started
            console.print(
                f"static: May ROC-AUC {champion.evaluation['metrics']['roc_auc']:.3f} "
                f"({seconds:.0f}s with the search)"
            )
            proba = predict_proba(champion.pipeline, evaluation, champion.inputs.columns)
            static = Scored("static", proba, 0, [seconds])
            store(cache_path(args.data_dir, static_key), static)
            static_params.write_text(json.dumps(champion.params, sort_keys=True))
        results["static"] = static
        params = json.loads(static_params.read_text())
        console.print(f"champion hyperparameters (reused unless a policy searches): {params}")
        for name in chosen:
            policy = known[name]
            # Fields at their defaults stay out of the key: adding a field keeps old caches.
            added = ("params", "delay_days", "holdout_days", "offset_days")
            fields = {k: v for k, v in asdict(policy).items() if k not in added}
            key = {"policy": name, **fields, "params": params, **base_key}
            if policy.params:
                key["params"] = {**params, **dict(policy.params)}
            if policy.delay_days:
                key["delay_days"] = policy.delay_days
            if policy.holdout_days:
                key["holdout_days"] = policy.holdout_days
            if policy.offset_days:
                key["offset_days"] = policy.offset_days
            if policy.drop:
                key["inputs"] = kept_features(features, policy.drop)
            scored = cached(cache_path(args.data_dir, key), len(evaluation))
            if scored is None:
                scored = score_policy(policy, frame, evaluation, ids_at, features, label, params)
                store(cache_path(args.data_dir, key), scored)
            results[name] = scored
    if args.score_only:
        return 0

    if args.served_lead is None:
        print_tables(results, known, months, y, args)
    else:
        for title, part in (
            ("features as of the prediction time", slice(0, fresh_rows)),
            (f"features as of {args.served_lead} min before departure", slice(fresh_rows, None)),
        ):
            console.rule(title)
            print_tables(
                {name: Scored(s.policy, s.proba[part], s.retrains) for name, s in results.items()},
                known,
                months,
                y,
                args,
            )
    # Timed afresh each run (never cached): the largest window, the champion's hyperparameters.
    last = max(known["naive"].instants())
    with threadpool_limits(limits=args.threads, user_api="openmp"):
        cpu = time.process_time()
        _, _, seconds = retrain(
            known["naive"],
            frame,
            ids_at[last] if last in ids_at else knowable_ids(settings, last),
            last,
            features,
            label,
            params,
        )
        cpu = time.process_time() - cpu
    rows = int((frame[TIME_COLUMN] < last).sum())
    console.print(
        f"one retrain at 1x data (about {rows:,} flights before {last.date()}, reused "
        f"hyperparameters, {args.threads} thread): {seconds:.1f}s wall, {cpu:.1f}s CPU "
        f"(target <= 60s); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    return 0


def print_tables(
    results: dict[str, Scored],
    known: dict[str, Policy],
    months: np.ndarray,
    y: np.ndarray,
    args: argparse.Namespace,
) -> None:
    names = list(results)
    monthly = Table(title="ROC-AUC by month of scheduled departure (UTC), July-December 2013")
    monthly.add_column("policy", no_wrap=True)
    for month in EVAL_MONTHS:
        monthly.add_column(date(2013, month, 1).strftime("%b"), justify="right")
    monthly.add_column("mean", justify="right")
    monthly.add_column("retrains", justify="right")
    monthly.add_column("what", no_wrap=True)
    by_month = {
        name: [roc_auc_score(y[months == m], results[name].proba[months == m]) for m in EVAL_MONTHS]
        for name in names
    }
    means = {name: float(np.mean(scores)) for name, scores in by_month.items()}
    for name, scores in by_month.items():
        note = known[name].note if name in known else "Jan-Apr tuned, never retrained"
        monthly.add_row(
            name,
            *(f"{s:.3f}" for s in scores),
            f"{means[name]:.4f}",
            str(results[name].retrains),
            note,
        )
    console.print(monthly)

    paired = Table(
        title=f"mean monthly ROC-AUC difference, Jul-Dec; paired bootstrap 95% CI "
        f"({args.boot} replicates, flights resampled within months, seed {args.seed})"
    )
    for column in ("policy", "vs static", "95% CI", "vs naive", "95% CI "):
        paired.add_column(column, justify="left" if column == "policy" else "right")
    for name in names:
        if name == "static":
            continue
        row = [name]
        for baseline in ("static", "naive"):
            if baseline not in results or baseline == name:
                row += ["", ""]
                continue
            mean, low, high = paired_bootstrap(
                months, y, results[name].proba, results[baseline].proba, args.boot, args.seed
            )
            row += [f"{mean:+.4f}", f"{low:+.4f} .. {high:+.4f}"]
        paired.add_row(*row)
    console.print(paired)
    console.print(phase_table(means))


def phase_table(means: dict[str, float]) -> Table:
    """Each scheduled policy over its phases (``means``: each run's mean monthly ROC-AUC):
    how far the headline moves with the day of the cycle its retrains fall on, which no
    bootstrap over flights shows."""
    table = Table(title="the schedule's phase: gain over each phase's run (point estimates)")
    columns = ("policy", "phases", "vs static: mean", "min .. max", "vs naive: mean", "min .. max ")
    for column in columns:
        table.add_column(column, justify="left" if column == "policy" else "right")
    groups: dict[str, list[str]] = {}
    for name in means:
        groups.setdefault(name.split("@")[0], []).append(name)
    for policy, names in groups.items():
        if len(names) < 2:
            continue
        row = [policy, ",".join(n.partition("@")[2] or "0" for n in names)]
        for baseline in ("static", "naive"):
            if baseline not in means:
                row += ["", ""]
                continue
            gains = [means[n] - means[baseline] for n in names]
            row += [f"{np.mean(gains):+.4f}", f"{min(gains):+.4f} .. {max(gains):+.4f}"]
        table.add_row(*row)
    return table


if __name__ == "__main__":
    raise SystemExit(main())
