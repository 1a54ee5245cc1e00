"""Training pipeline CLI: ``python -m training --help``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from feature_repo.cli_support import iso_date, run_cli, stdout_console
from feature_repo.settings import Settings

if TYPE_CHECKING:
    from training.promotion import GateConfig, GateResult, Outcome
    from training.train import ProgressFn

console = stdout_console()

# Rows of a long table shown without -v.
SHOWN_ROWS = 8

# `models promote` exits with this when the gate says no: a refusal, not a crash.
EXIT_GATE_REFUSED = 3
# `models reproduce` exits with this when the rebuilt set or model differs from the record.
EXIT_NOT_REPRODUCED = 4


def iso_instant(text: str) -> datetime:
    """argparse type for an ISO 8601 instant with a UTC offset (a bare date means its start)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 instant like 2013-06-01T00:00:00+00:00, got {text!r}"
        ) from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. +00:00")
    return value


def _instant(text: str) -> Any:
    """argparse type for an ISO date or datetime (UTC unless it has an offset)."""
    from feature_repo.clock import parse_instant

    try:
        return parse_instant(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _cmd_build_dataset(args: argparse.Namespace, settings: Settings) -> int:
    from training.catalog import build_and_store
    from training.dataset import build_training_set

    if args.end < args.start:
        raise ValueError(f"--end {args.end} is before --start {args.start}")
    as_of = f" as of {args.as_of.isoformat()}" if args.as_of else ""
    stored_already = False
    with console.status(f"building point-in-time training set {args.start} .. {args.end}{as_of}"):
        if args.out:
            built = build_training_set(
                settings, args.start, args.end, out=args.out, as_of=args.as_of
            )
        else:
            built, stored_already = build_and_store(
                settings, args.start, args.end, as_of=args.as_of
            )
    out = built.path
    manifest = built.manifest
    nulls = manifest["null_counts"]
    # The most-null features first; all of them with -v.
    shown = sorted(nulls.items(), key=lambda item: -item[1])
    if not getattr(args, "verbose", 0):
        shown = [(name, count) for name, count in shown[:SHOWN_ROWS] if count]
    table = Table(title="nulls per feature, most first", show_edge=False)
    table.add_column("feature")
    table.add_column("nulls", justify="right")
    table.add_column("share", justify="right")
    for name, count in shown:
        table.add_row(name, f"{count:,}", f"{count / max(1, manifest['rows']):.1%}")
    if len(shown) < len(nulls):
        table.caption = f"{len(nulls) - len(shown)} more features with fewer nulls (-v lists all)"
    console.print(table)
    console.print(
        f"training set: {manifest['rows']:,} rows, positive rate {manifest['positive_rate']:.1%}, "
        f"{len(manifest['features'])} features, fingerprint {manifest['fingerprint'][:12]}, "
        f"{manifest['seconds']:.1f}s, as of {manifest['as_of']} -> {out}"
        + (" (this content was stored already; kept as it was)" if stored_already else "")
    )
    return 0


def _cmd_datasets_list(args: argparse.Namespace, settings: Settings) -> int:
    from training.catalog import stored_sets

    sets = stored_sets(settings)
    if not sets:
        console.print(f"no training sets in {settings.datasets_dir}")
        return 0
    table = Table(
        title=f"training sets in {settings.datasets_dir} (training_<start>_<end>_<id>.parquet)",
        show_edge=False,
    )
    # The id is the fingerprint's first 12 hex digits, and names the file.
    for column in ("id", "window", "as of (raw watermark)", "rows", "models"):
        table.add_column(
            column, no_wrap=column != "models", justify="right" if column == "rows" else "left"
        )
    for stored in sets:
        table.add_row(
            stored.fingerprint[:12]
            if stored.path.stem.endswith(stored.fingerprint[:12])
            else stored.path.name,
            stored.window,
            stored.as_of,
            f"{stored.manifest.get('rows', 0):,}",
            ", ".join(tag.split(":", 1)[1] for tag in stored.models) or "(none)",
        )
    console.print(table)
    return 0


def _cmd_datasets_prune(args: argparse.Namespace, settings: Settings) -> int:
    from training.catalog import prune

    removed = prune(settings, grace_seconds=args.older_than * 3600, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    if not removed:
        console.print(
            f"nothing to prune: every training set is referenced by a model or younger "
            f"than {args.older_than:g} h"
        )
    for stored in removed:
        console.print(
            f"{verb} {stored.path.name} ({stored.window}, {stored.manifest.get('rows', 0):,} rows, "
            f"fingerprint {stored.fingerprint[:12]}, {stored.size_bytes / 1e6:.1f} MB)"
        )
    return 0


@contextmanager
def _progress_bars() -> Iterator[ProgressFn]:
    with Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks: dict[str, Any] = {}

        def update(step: str, completed: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(step, total=total)
            progress.update(tasks[step], completed=completed, total=total)

        yield update


def _gate_config(args: argparse.Namespace) -> GateConfig:
    from training.promotion import GateConfig

    return GateConfig.from_env(
        min_gain=args.min_gain,
        max_slice_drop=args.max_slice_drop,
        min_slice_rows=args.min_slice_rows,
        max_calibration_gap=args.max_calibration_gap,
        max_rate_disparity=args.max_rate_disparity,
    )


def _print_gate(gate: GateResult | None) -> None:
    if gate is None:
        return
    verdict = "[green]passed[/green]" if gate.passed else "[red]refused[/red]"
    console.print(f"gate {verdict}:")
    for reason in gate.reasons:
        console.print(f"  - {reason}")
    for drop in gate.slice_drops:
        console.print(
            f"    {drop['slice']}: {drop['champion_roc_auc']:.4f} -> "
            f"{drop['candidate_roc_auc']:.4f} ({drop['rows']:,} rows)"
        )


def _print_outcome(outcome: Outcome) -> None:
    if outcome.action == "promote_refused":
        stage = outcome.stage or "candidate"
        console.print(
            f"{outcome.tag} stays {'a ' if stage == 'candidate' else ''}{stage}; "
            f"champion is still {outcome.old_champion or '(none)'}"
        )
        return
    if outcome.action == "promote_forced":
        console.print(
            f"[yellow]--force overrides the gate's refusal[/yellow] (reason given: "
            f"{outcome.reason!r}; recorded in the audit log)"
        )
    console.print(
        f"{outcome.action}: champion {outcome.old_champion or '(none)'} -> {outcome.new_champion}"
    )


def _cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from training.promotion import promote
    from training.train import TrainConfig, train_and_register

    config = TrainConfig(
        train_start=args.train_start,
        train_end=args.train_end,
        valid_end=args.valid_end,
        seed=args.seed,
        grid=args.grid,
        cv_splits=args.cv_splits,
        rebuild_dataset=args.rebuild_dataset,
        threads=args.threads,
    )
    gate_config = _gate_config(args)  # read before training: a bad flag should fail fast
    with _progress_bars() as progress:
        run = train_and_register(settings, config, progress)
    metrics = run.trained.evaluation["metrics"]
    baselines = run.trained.evaluation["baselines"]
    table = Table(title=f"validation {config.train_end} < departure <= {config.valid_end}")
    for column in ("scorer", "ROC-AUC", "PR-AUC", "log loss", "Brier"):
        table.add_column(column, justify="left" if column == "scorer" else "right")
    for name, values in (("model", metrics), *baselines.items()):
        table.add_row(
            name,
            *(
                f"{values[k]:.4f}" if k in values else "-"
                for k in ("roc_auc", "pr_auc", "log_loss", "brier")
            ),
        )
    console.print(table)
    console.print(f"report:  {run.report_html}\nmetrics: {run.metrics_json}")
    if args.promote:
        outcome = promote(settings, run.record.tag, gate_config, user=None)
        _print_gate(outcome.gate)
        _print_outcome(outcome)
    console.print(
        f"{run.record.tag}: ROC-AUC {metrics['roc_auc']:.4f} "
        f"(base rate {baselines['base_rate']['roc_auc']:.4f}, "
        f"carrier history {baselines['carrier_history']['roc_auc']:.4f}), "
        f"PR-AUC {metrics['pr_auc']:.4f}, F1 {metrics['f1']:.4f} at {metrics['threshold']:.3f}, "
        f"{metrics['rows']:,} validation flights; training set "
        f"{'reused' if run.dataset_reused else 'built'}"
    )
    return 0


def _cmd_models_list(args: argparse.Namespace, settings: Settings) -> int:
    from model_registry.integrity import model_problems
    from model_registry.rollout import read_rollout
    from training.registry import broken_models, list_models

    records = list_models(settings)
    broken = broken_models(settings)
    if not records and not broken:
        console.print(f"no models in the registry at {settings.bentoml_home}")
        return 0
    rollout = read_rollout(settings)
    table = Table(title=f"models in {settings.bentoml_home}, oldest first", show_edge=False)
    # The tag is what people copy into `models promote`; it must never wrap.
    table.add_column("tag", no_wrap=True)
    table.add_column("stage", no_wrap=True)
    table.add_column("ROC-AUC", no_wrap=True, justify="right")
    table.add_column("validation window", no_wrap=True)
    table.add_column("rollout", no_wrap=True)
    for record in records:
        meta = record.metadata
        valid = meta.get("validation_window", {})
        roc_auc = meta.get("metrics", {}).get("roc_auc")
        problems = model_problems(record.path, meta, settings.data_dir)
        table.add_row(
            record.tag,
            "[red]broken[/red]" if problems else record.stage or "?",
            f"{roc_auc:.4f}" if isinstance(roc_auc, float) else "-",
            f"{valid.get('start', '?')}..{valid.get('end', '?')}",
            f"challenger, {rollout.describe()}"
            if rollout and rollout.challenger == record.tag
            else "",
        )
    for entry in broken:
        table.add_row(entry.tag, "[red]broken[/red]", "-", "-", "")
    console.print(table)
    for record in records:
        for problem in model_problems(record.path, record.metadata, settings.data_dir):
            console.print(f"[red]{record.tag}[/red] ({record.stage}, broken): {problem}")
    for entry in broken:
        console.print(f"[red]{entry.tag}[/red] (broken): {entry.reason}")
    if rollout is None:
        console.print("no rollout: the champion answers every request alone")
    return 0


def _cmd_models_show(args: argparse.Namespace, settings: Settings) -> int:
    from training.registry import get_model

    record = get_model(settings, args.tag)
    document = {
        "tag": record.tag,
        "labels": record.labels,
        "created": record.creation_time.isoformat(),
        "path": str(record.path),
        "metadata": record.metadata,
    }
    console.print_json(json.dumps(document, default=str))
    return 0


def _cmd_models_promote(args: argparse.Namespace, settings: Settings) -> int:
    from training.promotion import promote

    if args.live:
        return _promote_live(args, settings)
    if args.rule is not None or args.max_loss is not None:
        raise SystemExit("--rule and --max-loss judge live evidence: use them with --live")
    outcome = promote(settings, args.tag, _gate_config(args), force=args.force, reason=args.reason)
    _print_gate(outcome.gate)
    _print_outcome(outcome)
    return EXIT_GATE_REFUSED if outcome.action == "promote_refused" else 0


def _live_comparison(
    settings: Settings, challenger: str, window: list[Any] | None
) -> tuple[dict[str, Any], str]:
    """compare-models for ``challenger`` (monitoring's own code path); the JSON and its path."""
    from monitoring.compare_models import compare_models, default_window, write_comparison

    span = (window[0], window[1]) if window else default_window(settings)
    result = compare_models(settings, challenger, span)
    json_path, _ = write_comparison(settings, result)
    return result.to_dict(), str(json_path)


def _promote_live(args: argparse.Namespace, settings: Settings) -> int:
    from training.registry import get_model
    from training.rollout import NON_INFERIOR, promote_live, watch_period

    tag = get_model(settings, args.tag).tag
    comparison, path = _live_comparison(settings, tag, args.window)
    outcome, gate, watching = promote_live(
        settings,
        tag,
        _gate_config(args),
        comparison,
        evidence_path=path,
        watch=watch_period(args.watch),
        reason=args.reason,
        rule=args.rule or NON_INFERIOR,
        max_loss=args.max_loss,
    )
    verdict = "[green]passed[/green]" if gate.passed else "[red]refused[/red]"
    console.print(f"live gate {verdict} (evidence {path}):")
    for reason in gate.reasons:
        console.print(f"  - {reason}")
    _print_outcome(outcome)
    if gate.passed and watching is not None:
        console.print(f"{watching.challenger} stays in shadow until {watching.until}")
    return 0 if gate.passed else EXIT_GATE_REFUSED


def _cmd_models_rollout(args: argparse.Namespace, settings: Settings) -> int:
    from model_registry.rollout import CANARY, SHADOW
    from training import rollout

    chosen = [bool(args.shadow), args.canary is not None, bool(args.stop)]
    if sum(chosen) != 1:
        raise ValueError("choose one of --shadow, --canary PERCENT or --stop")
    if args.stop:
        if args.tag:
            raise ValueError("--stop takes no TAG: it ends the one rollout in progress")
        ended = rollout.stop(settings, reason=args.reason)
        console.print(f"rollout of {ended.challenger} stopped; the champion answers every request")
        return 0
    if not args.tag:
        raise ValueError("name the challenger: models rollout TAG --shadow|--canary PERCENT")
    mode = SHADOW if args.shadow else CANARY
    started = rollout.start(settings, args.tag, mode, args.canary or 0.0, reason=args.reason)
    console.print(
        f"{started.challenger} is the challenger: {started.describe()}; serving workers pick "
        "it up within their registry-watch period"
    )
    return 0


def _cmd_models_reproduce(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from training.reproduce import ROC_AUC_TOLERANCE, reproduce

    started = time.perf_counter()
    with console.status(f"reproducing {args.tag}: rebuilding its training set, then refitting"):
        result = reproduce(settings, args.tag)
    seconds = time.perf_counter() - started
    table = Table(title=f"{result.tag}: recorded vs reproduced", show_edge=False)
    for column in ("", "recorded", "reproduced", "difference"):
        table.add_column(column, justify="left" if not column else "right", no_wrap=True)
    fp_ok = "[green]same[/green]" if result.fingerprint_matches else "[red]differs[/red]"
    table.add_row(
        "training set fingerprint", result.recorded_fingerprint[:16], result.fingerprint[:16], fp_ok
    )
    for name, recorded, reproduced in result.metrics:
        if isinstance(recorded, float) or isinstance(reproduced, float):
            delta = (
                f"{float(reproduced) - float(recorded):+.2e}"
                if recorded is not None and reproduced is not None
                else "-"
            )
            table.add_row(name, _number(recorded), _number(reproduced), delta)
        else:
            same = "same" if recorded == reproduced else "[red]differs[/red]"
            table.add_row(name, _number(recorded), _number(reproduced), same)
    console.print(table)
    console.print(f"rebuilt as of {result.as_of}: {result.rows:,} rows")
    for change in result.environment_changes:
        console.print(f"environment differs: {change}")
    if not result.environment_changes:
        console.print("environment: same library versions and installed-packages lock")
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    if result.reproduced:
        console.print(
            f"[green]reproduced[/green]: same training set, ROC-AUC within {ROC_AUC_TOLERANCE:g} "
            f"({timings}; {seconds:.1f}s in all)"
        )
        return 0
    why = [] if result.fingerprint_matches else ["the rebuilt training set's fingerprint differs"]
    if not why:
        why.append(f"ROC-AUC differs by {result.roc_auc_delta} (> {ROC_AUC_TOLERANCE:g})")
    console.print(f"[red]not reproduced[/red]: {'; '.join(why)} ({seconds:.1f}s)")
    return EXIT_NOT_REPRODUCED


def _number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _cmd_models_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from training.promotion import rollback
    from training.rollout import clear_if_crowned

    evidence = None
    if args.evidence is not None:
        evidence = {"path": str(args.evidence), "comparison": json.loads(args.evidence.read_text())}
    elif args.live:
        comparison, path = _live_comparison(settings, _shadowed_predecessor(settings), None)
        evidence = {"path": path, "comparison": comparison}
    _print_outcome(rollback(settings, reason=args.reason, evidence=evidence))
    clear_if_crowned(settings)
    return 0


def _shadowed_predecessor(settings: Settings) -> str:
    """The former champion kept in shadow after a live promotion: what --live compares."""
    from model_registry.rollout import read_rollout

    rollout = read_rollout(settings)
    if rollout is None:
        raise ValueError(
            "rollback --live compares the champion with its predecessor in shadow, and no "
            "model is in shadow; pass --evidence FILE, or roll back without evidence"
        )
    return rollout.challenger


def _add_gate_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "promotion gate (defaults from FEASTLINE_GATE_MIN_GAIN, _MAX_SLICE_DROP, _MIN_SLICE_ROWS)"
    )
    group.add_argument(
        "--min-gain",
        type=float,
        default=None,
        help="validation ROC-AUC must beat the champion's by more than this (default 0.0)",
    )
    group.add_argument(
        "--max-slice-drop",
        type=float,
        default=None,
        help="largest ROC-AUC loss allowed on any carrier/origin/month slice (default 0.02)",
    )
    group.add_argument(
        "--min-slice-rows",
        type=int,
        default=None,
        help="slices with fewer validation rows are not compared or checked (default 300)",
    )
    group.add_argument(
        "--max-calibration-gap",
        type=float,
        default=None,
        help="largest |mean predicted - observed late share| on any carrier/origin/aircraft-age "
        "slice (default 0.10; FEASTLINE_GATE_MAX_CALIBRATION_GAP)",
    )
    group.add_argument(
        "--max-rate-disparity",
        type=float,
        default=None,
        help="largest |slice FPR or FNR - overall| on any such slice "
        "(default 0.35; FEASTLINE_GATE_MAX_RATE_DISPARITY)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Training pipeline: point-in-time training sets, models, the model registry.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build-dataset", help="build a point-in-time training set from Feast")
    p.add_argument(
        "--start", type=iso_date, required=True, help="first UTC day (scheduled departure)"
    )
    p.add_argument("--end", type=iso_date, required=True, help="last UTC day, inclusive")
    p.add_argument(
        "--as-of",
        type=iso_instant,
        default=None,
        help="build the set as it would have been built when the raw watermark was this "
        "instant: only flights whose label was knowable by then (default: the raw watermark)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write here instead of the immutable store under data/datasets/",
    )
    p.set_defaults(func=_cmd_build_dataset)

    datasets = sub.add_parser("datasets", help="list and prune the stored training sets")
    dsub = datasets.add_subparsers(dest="datasets_command", required=True)
    p = dsub.add_parser(
        "list", help="every stored set: window, as-of watermark, rows, fingerprint, models"
    )
    p.set_defaults(func=_cmd_datasets_list)
    p = dsub.add_parser("prune", help="remove the sets no model references")
    p.add_argument(
        "--older-than",
        type=float,
        default=1.0,
        help="only sets stored at least this many hours ago (default 1: a train run registers "
        "its model minutes after storing its set)",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    p.set_defaults(func=_cmd_datasets_prune)

    from training.model import GRIDS

    p = sub.add_parser(
        "train",
        help="train, evaluate and register a model (a candidate) on a time-split window",
    )
    p.add_argument("--train-start", type=iso_date, required=True, help="first UTC day of training")
    p.add_argument("--train-end", type=iso_date, required=True, help="last UTC day of training")
    p.add_argument(
        "--valid-end",
        type=iso_date,
        required=True,
        help="last UTC day of validation (validation starts the day after --train-end)",
    )
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument(
        "--grid", choices=sorted(GRIDS), default="default", help="hyperparameter grid to search"
    )
    p.add_argument("--cv-splits", type=int, default=3, help="time-ordered CV folds (default 3)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OpenMP threads per fit (default 1: reproducible, and safe on a shared machine)",
    )
    p.add_argument(
        "--rebuild-dataset",
        action="store_true",
        help="rebuild the training set even if a matching one is stored",
    )
    p.add_argument(
        "--promote",
        action="store_true",
        help="then promote the new model if it passes the gate (a refusal is not an error)",
    )
    _add_gate_flags(p)
    p.set_defaults(func=_cmd_train)

    models = sub.add_parser("models", help="list, show, promote and roll back registered models")
    msub = models.add_subparsers(dest="models_command", required=True)
    p = msub.add_parser("list", help="every stored version with its stage and headline metric")
    p.set_defaults(func=_cmd_models_list)
    p = msub.add_parser("show", help="labels and lineage metadata of one model")
    p.add_argument("tag", help="flight_delay:<version>, a bare <version>, latest, or champion")
    p.set_defaults(func=_cmd_models_show)
    p = msub.add_parser(
        "reproduce",
        help="rebuild a model's training set and refit it; compare with the record",
        description=(
            "Rebuilds the training set as of the recorded raw watermark, checks its "
            "fingerprint, refits with the recorded hyperparameters and seed, and prints "
            "recorded against reproduced metrics. Exit codes: 0 reproduced (same fingerprint, "
            f"ROC-AUC within 1e-6), {EXIT_NOT_REPRODUCED} not reproduced, 1 error."
        ),
    )
    p.add_argument("tag", help="flight_delay:<version>, a bare <version>, latest, or champion")
    p.set_defaults(func=_cmd_models_reproduce)
    p = msub.add_parser(
        "promote",
        help="make a model the champion if it passes the gate",
        description=(f"Exit codes: 0 promoted, {EXIT_GATE_REFUSED} refused by the gate, 1 error."),
    )
    p.add_argument("tag", help="flight_delay:<version>, a bare <version>, or latest")
    p.add_argument("--force", action="store_true", help="promote even if the gate refuses")
    p.add_argument("--reason", default=None, help="why (required with --force; audit-logged)")
    p.add_argument(
        "--live",
        action="store_true",
        help="gate on the paired live comparison with the champion (monitoring compare-models) "
        "instead of the offline validation window; the old champion then stays in shadow",
    )
    p.add_argument(
        "--window",
        nargs=2,
        type=_instant,
        default=None,
        metavar=("START", "END"),
        help="with --live: predictions made in [START, END) (default: the last 30 days to now)",
    )
    p.add_argument(
        "--watch",
        default=None,
        help="with --live: how long the old champion stays in shadow "
        "(default FEASTLINE_ROLLOUT_WATCH, else 7d)",
    )
    p.add_argument(
        "--rule",
        choices=("non_inferior", "not_worse"),
        default=None,
        help="with --live: non_inferior (default) promotes when the CI's lower bound of the "
        "ROC-AUC gain exceeds --min-gain; not_worse (the loop's default) unless its upper "
        "bound is below --min-gain, or the gain itself below -(--max-loss)",
    )
    p.add_argument(
        "--max-loss",
        type=float,
        default=None,
        help="with --live --rule not_worse: refuse a ROC-AUC loss past this, whatever the CI",
    )
    _add_gate_flags(p)
    p.set_defaults(func=_cmd_models_promote)
    p = msub.add_parser("rollback", help="restore the previous champion; archive the current one")
    p.add_argument("--reason", default=None, help="why (audit-logged)")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--evidence",
        type=Path,
        default=None,
        help="a compare-models JSON that motivated the rollback (kept in the audit entry)",
    )
    group.add_argument(
        "--live",
        action="store_true",
        help="run compare-models for the current champion against the model it replaced "
        "(in shadow for its watch period) and keep the result in the audit entry",
    )
    p.set_defaults(func=_cmd_models_rollback)
    p = msub.add_parser(
        "rollout",
        help="run a challenger beside the champion: in shadow, or answering a canary share",
        description="At most one challenger at a time; every change is audit-logged. "
        "Serving workers pick a change up within their registry-watch period.",
    )
    p.add_argument("tag", nargs="?", default=None, help="the challenger (not with --stop)")
    p.add_argument(
        "--shadow", action="store_true", help="score every request with it; the champion answers"
    )
    p.add_argument(
        "--canary",
        type=float,
        default=None,
        metavar="PERCENT",
        help="it answers this share of flights (by a hash of the flight's identity)",
    )
    p.add_argument("--stop", action="store_true", help="end the rollout")
    p.add_argument("--reason", default=None, help="why (audit-logged)")
    p.set_defaults(func=_cmd_models_rollout)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv, [((RuntimeError, ValueError), 1)])


if __name__ == "__main__":
    sys.exit(main())
