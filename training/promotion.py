"""Promotion gate, rollback and the audit log of the model registry.

**Gate.** A model becomes champion only if, on the same validation window as
the current champion, its ROC-AUC beats the champion's by more than
``min_gain``, and no slice (carrier, origin, month) with at least
``min_slice_rows`` validation rows loses more than ``max_slice_drop`` ROC-AUC.
When the two models were validated on different windows, the champion is
re-scored on the candidate's validation rows (read back from the candidate's
training set, checked against its fingerprint) so the comparison stays like
for like. The first model, with no champion to beat, passes. ``--force``
promotes past a failed gate and records the reason.

**Rollback** re-crowns the champion before the current one and archives the
current one. The order of champions is kept in ``champions.json`` beside the
store; each rollback steps one further back.

**Audit log.** Every promotion, refusal and rollback appends one JSON line
to ``<bentoml_home>/audit.jsonl``: who, when, what, the tag, the old and new
champion, the reason and the gate's result.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from feature_repo.atomic_io import append_json_line, write_json
from feature_repo.settings import Settings
from model_registry import ARCHIVED, CHAMPION
from model_registry.integrity import model_problems
from training.registry import (
    ARTIFACT_FILE,
    MissingMetadata,
    ModelRecord,
    RegistryError,
    champions,
    get_model,
    load_pipeline,
    metadata_path,
    prepare_stage,
    registry_lock,
)

log = logging.getLogger(__name__)

ENV_PREFIX = "FEASTLINE_GATE_"
# What the gate and serving need; a model without them was not saved by ``train``.
REQUIRED_METADATA = (
    "metrics.roc_auc",
    "slices",
    "threshold",
    "model_inputs",
    "feature_service",
    "validation_window.start",
    "validation_window.end",
    "train_window.end",
    "training_set.fingerprint",
)


class GateUnavailable(RegistryError):
    """The gate cannot compare the two models (it then refuses, unless forced)."""


@dataclass(frozen=True)
class GateConfig:
    min_gain: float = 0.0
    max_slice_drop: float = 0.02
    min_slice_rows: int = 300
    max_calibration_gap: float = 0.10
    max_rate_disparity: float = 0.35

    def __post_init__(self) -> None:
        if self.max_slice_drop < 0 or self.min_slice_rows < 1:
            raise ValueError("max slice drop must be >= 0 and min slice rows >= 1")
        if self.max_calibration_gap <= 0 or self.max_rate_disparity <= 0:
            raise ValueError("max calibration gap and max rate disparity must be > 0")

    @classmethod
    def from_env(cls, **overrides: Any) -> GateConfig:
        """Defaults, then ``FEASTLINE_GATE_*`` variables, then explicit overrides (CLI flags)."""
        values: dict[str, Any] = {}
        for name, kind in (
            ("min_gain", float),
            ("max_slice_drop", float),
            ("min_slice_rows", int),
            ("max_calibration_gap", float),
            ("max_rate_disparity", float),
        ):
            variable = f"{ENV_PREFIX}{name.upper()}"
            if (text := os.environ.get(variable)) is not None:
                try:
                    values[name] = kind(text)
                except ValueError:
                    raise ValueError(
                        f"{variable} must be a {kind.__name__}, got {text!r}"
                    ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class GateResult:
    passed: bool
    reasons: list[str]
    candidate: str
    champion: str | None = None
    candidate_roc_auc: float | None = None
    champion_roc_auc: float | None = None
    gain: float | None = None
    validation_window: dict[str, str] = field(default_factory=dict)
    champion_rescored: bool = False
    # The validation rows both models were scored on: {"rows", "fingerprint"}.
    rows_compared: dict[str, Any] = field(default_factory=dict)
    slices_compared: int = 0
    slice_drops: list[dict[str, Any]] = field(default_factory=list)
    # Bias checks on the candidate's model card: slices over a bound, worst per measure.
    bias_findings: list[dict[str, Any]] = field(default_factory=list)
    bias_worst: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Outcome:
    action: str
    tag: str
    old_champion: str | None
    new_champion: str | None
    gate: GateResult | None = None
    # The model's stage before the change (a refused one keeps it) and the stated reason.
    stage: str | None = None
    reason: str | None = None

    @property
    def changed(self) -> bool:
        return self.old_champion != self.new_champion


# -- metadata --------------------------------------------------------------------------------
def _lookup(metadata: dict[str, Any], dotted: str) -> Any:
    value: Any = metadata
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def require_promotable(record: ModelRecord, data_dir: Path | None = None) -> None:
    """Refuse a model without the lineage, or (given ``data_dir``) one not fully written."""
    missing = [key for key in REQUIRED_METADATA if _lookup(record.metadata, key) in (None, "")]
    if missing:
        raise MissingMetadata(
            f"{record.tag} lacks the metadata the gate and serving need ({', '.join(missing)}); "
            "only models saved by `python -m training train` can be promoted"
        )
    if not (record.path / ARTIFACT_FILE).is_file():
        raise MissingMetadata(
            f"{record.tag} has no {ARTIFACT_FILE}; the stored model is incomplete"
        )
    problems = model_problems(record.path, record.metadata, data_dir) if data_dir else []
    if problems:
        raise MissingMetadata(f"{record.tag} is incomplete: {'; '.join(problems)}")


def _window(metadata: dict[str, Any]) -> dict[str, str]:
    window = metadata["validation_window"]
    return {"start": window["start"], "end": window["end"]}


# -- the gate ----------------------------------------------------------------------------------
def compare(
    candidate_tag: str,
    candidate: dict[str, Any],
    champion_tag: str | None,
    champion: dict[str, Any] | None,
    config: GateConfig,
    rescored: bool = False,
) -> GateResult:
    """The gate on two evaluations ``{"metrics", "slices", "validation_window"}``, same window."""
    result = GateResult(
        passed=True,
        reasons=[],
        candidate=candidate_tag,
        champion=champion_tag,
        candidate_roc_auc=candidate["metrics"]["roc_auc"],
        validation_window=_window(candidate),
        champion_rescored=rescored,
        config=asdict(config),
    )
    if champion is None:
        result.reasons.append("no current champion: the first model is promoted")
        return result
    if _window(champion) != _window(candidate):
        raise GateUnavailable("the gate compares models on the same validation window only")
    if "roc_auc" not in champion["metrics"]:
        raise GateUnavailable("the champion's ROC-AUC is undefined on this validation window")
    result.champion_roc_auc = champion["metrics"]["roc_auc"]
    result.gain = candidate["metrics"]["roc_auc"] - champion["metrics"]["roc_auc"]
    if result.gain > config.min_gain:
        result.reasons.append(
            f"ROC-AUC {result.candidate_roc_auc:.4f} beats the champion's "
            f"{result.champion_roc_auc:.4f} by {result.gain:+.4f} (> {config.min_gain})"
        )
    else:
        result.passed = False
        result.reasons.append(
            f"ROC-AUC {result.candidate_roc_auc:.4f} does not beat the champion's "
            f"{result.champion_roc_auc:.4f} by more than {config.min_gain} "
            f"(gain {result.gain:+.4f})"
        )
    for kind, groups in candidate["slices"].items():
        for key, ours in groups.items():
            theirs = champion["slices"].get(kind, {}).get(key)
            if theirs is None or "roc_auc" not in ours or "roc_auc" not in theirs:
                continue
            if min(ours["rows"], theirs["rows"]) < config.min_slice_rows:
                continue
            result.slices_compared += 1
            drop = theirs["roc_auc"] - ours["roc_auc"]
            if drop > config.max_slice_drop:
                result.slice_drops.append(
                    {
                        "slice": f"{kind}={key}",
                        "rows": ours["rows"],
                        "candidate_roc_auc": ours["roc_auc"],
                        "champion_roc_auc": theirs["roc_auc"],
                        "drop": drop,
                    }
                )
    if result.slice_drops:
        result.passed = False
        worst = max(result.slice_drops, key=lambda d: d["drop"])
        result.reasons.append(
            f"{len(result.slice_drops)} slice(s) lose more than {config.max_slice_drop} ROC-AUC; "
            f"worst {worst['slice']}: {worst['champion_roc_auc']:.4f} -> "
            f"{worst['candidate_roc_auc']:.4f}"
        )
    else:
        result.reasons.append(
            f"no slice loses more than {config.max_slice_drop} ROC-AUC "
            f"({result.slices_compared} slices with >= {config.min_slice_rows} rows compared)"
        )
    return result


def validation_rows(metadata: dict[str, Any]) -> dict[str, Any]:
    window = metadata.get("validation_window", {})
    return {"rows": window.get("rows"), "fingerprint": window.get("fingerprint", "")}


def _candidate_validation(settings: Settings, candidate: ModelRecord) -> pd.DataFrame:
    """The candidate's validation rows, read back from its training set (fingerprint-checked)."""
    from training.dataset import fingerprint
    from training.trainset import time_split

    training_set = candidate.metadata["training_set"]
    path = metadata_path(settings, training_set.get("path"))
    if path is None or not path.is_file():
        raise GateUnavailable(
            f"re-scoring on {candidate.tag}'s validation rows needs its training set, and "
            f"{path or 'its path'} is gone"
        )
    frame = pd.read_parquet(path)
    if fingerprint(frame) != training_set["fingerprint"]:
        raise GateUnavailable(
            f"{path} no longer matches {candidate.tag}'s training-set fingerprint; "
            "cannot re-score on the candidate's validation rows"
        )
    return time_split(frame, date.fromisoformat(candidate.metadata["train_window"]["end"])).valid


def _score(
    settings: Settings, record: ModelRecord, valid: pd.DataFrame, label: str
) -> tuple[np.ndarray, float]:
    inputs = list(record.metadata["model_inputs"])
    absent = [c for c in inputs if c not in valid.columns]
    if absent:
        raise GateUnavailable(f"{record.tag} needs inputs the candidate's set lacks: {absent}")
    with threadpool_limits(limits=1, user_api="openmp"):
        p = load_pipeline(settings, record.tag).predict_proba(valid[inputs])[:, 1]
    return p, float(record.metadata["threshold"])


def rescore_on_candidate_rows(
    settings: Settings, champion: ModelRecord, candidate: ModelRecord, config: GateConfig
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Both models scored on the candidate's validation rows: the candidate's and the
    champion's evaluations, the rows compared, and the candidate's model card on them."""
    from training.dataset import fingerprint
    from training.evaluate import classification_metrics, slice_metrics
    from training.model_card import slice_table

    valid = _candidate_validation(settings, candidate)
    rows = {"rows": len(valid), "fingerprint": fingerprint(valid)}
    recorded = validation_rows(candidate.metadata)["fingerprint"]
    if recorded and recorded != rows["fingerprint"]:
        raise GateUnavailable(
            f"{candidate.tag}'s validation rows no longer match its recorded validation "
            "fingerprint; cannot re-score"
        )
    label = candidate.metadata.get("label", "label")
    y = valid[label].to_numpy()
    evaluations = []
    card: dict[str, Any] = {}
    for record in (candidate, champion):
        p, threshold = _score(settings, record, valid, label)
        evaluations.append(
            {
                "metrics": classification_metrics(y, p, threshold),
                "slices": slice_metrics(valid, y, p, threshold),
                "validation_window": _window(candidate.metadata),
            }
        )
        if record is candidate:
            card = slice_table(valid, y, p, threshold, config.min_slice_rows)
    return evaluations[0], evaluations[1], rows, card


def _count(rows: Any) -> str:
    return f"{rows:,}" if isinstance(rows, int) else "?"


def check_bias(result: GateResult, card: dict[str, Any] | None, config: GateConfig) -> None:
    """Refuse a candidate whose worst slice is over a calibration or FPR/FNR bound."""
    from training.model_card import MEASURES, bias_findings

    if not card or not card.get("slices"):
        result.reasons.append("bias checks skipped: the candidate has no model card")
        return
    over, worst = bias_findings(
        card, config.max_calibration_gap, config.max_rate_disparity, config.min_slice_rows
    )
    result.bias_findings = [f.to_dict() for f in over]
    result.bias_worst = {m: f.to_dict() for m, f in worst.items() if f is not None}
    if over:
        result.passed = False
        first = over[0]
        others = f"; {len(over) - 1} more slice/measure pair(s) over a bound" if over[1:] else ""
        result.reasons.append(f"bias check failed: worst is {first.describe()}{others}")
        return
    summary = ", ".join(
        f"{MEASURES[m].split(' (')[0]} {f.value:+.3f} ({f.slice})"
        for m, f in worst.items()
        if f is not None
    )
    result.reasons.append(
        f"bias checks passed (slices with >= {config.min_slice_rows} rows; worst: {summary})"
    )


def run_gate(
    settings: Settings, candidate: ModelRecord, current: ModelRecord | None, config: GateConfig
) -> GateResult:
    card = candidate.metadata.get("model_card")
    if current is None:
        result = compare(candidate.tag, candidate.metadata, None, None, config)
        result.rows_compared = validation_rows(candidate.metadata)
        check_bias(result, card, config)
        return result
    try:
        require_promotable(current)
        ours, theirs = validation_rows(candidate.metadata), validation_rows(current.metadata)
        if ours["fingerprint"] and ours["fingerprint"] == theirs["fingerprint"]:
            result = compare(
                candidate.tag, candidate.metadata, current.tag, current.metadata, config
            )
            result.rows_compared = ours
            result.reasons.insert(
                0,
                f"compared on identical validation rows: {ours['rows']:,} rows, "
                f"fingerprint {ours['fingerprint'][:12]} (recorded metrics)",
            )
        else:
            scored, champion_scored, rows, card = rescore_on_candidate_rows(
                settings, current, candidate, config
            )
            result = compare(candidate.tag, scored, current.tag, champion_scored, config, True)
            result.rows_compared = rows
            result.reasons.insert(
                0,
                f"validation rows differ ({current.tag}: {_count(theirs['rows'])} rows, "
                f"fingerprint {str(theirs['fingerprint'])[:12] or 'not recorded'}; "
                f"{candidate.tag}: {_count(ours['rows'])} rows, fingerprint "
                f"{str(ours['fingerprint'])[:12] or 'not recorded'}): both re-scored on the "
                f"candidate's {rows['rows']:,} rows, fingerprint {rows['fingerprint'][:12]}",
            )
        check_bias(result, card, config)
        return result
    except RegistryError as err:
        return GateResult(
            passed=False,
            reasons=[f"cannot compare with champion {current.tag}: {err}"],
            candidate=candidate.tag,
            champion=current.tag,
            candidate_roc_auc=candidate.metadata["metrics"]["roc_auc"],
            validation_window=_window(candidate.metadata),
            config=asdict(config),
        )


# -- audit log and champion history ----------------------------------------------------------
def audit_path(settings: Settings) -> Path:
    return settings.bentoml_home / "audit.jsonl"


def history_path(settings: Settings) -> Path:
    return settings.bentoml_home / "champions.json"


def read_audit(settings: Settings) -> list[dict[str, Any]]:
    path = audit_path(settings)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_audit(settings: Settings, entry: dict[str, Any]) -> None:
    # One line in one write, under the registry lock: lines never interleave.
    append_json_line(entry, audit_path(settings))


def read_history(settings: Settings) -> list[str]:
    path = history_path(settings)
    if not path.is_file():
        return []
    return list(json.loads(path.read_text()).get("history", []))


def _write_history(settings: Settings, history: list[str]) -> None:
    write_json({"history": history}, history_path(settings))


def _record_change(
    settings: Settings,
    outcome: Outcome,
    reason: str | None,
    user: str | None,
    forced: bool = False,
    evidence: dict[str, Any] | None = None,
) -> None:
    entry = {
        "ts": datetime.now(UTC).isoformat(timespec="seconds"),
        "user": user or getpass.getuser(),
        "action": outcome.action,
        "tag": outcome.tag,
        "old_champion": outcome.old_champion,
        "new_champion": outcome.new_champion,
        "reason": reason,
        "forced": forced,
        # The rows the two models were compared on (count and fingerprint).
        "rows_compared": outcome.gate.rows_compared if outcome.gate else None,
        "gate": outcome.gate.to_dict() if outcome.gate else None,
    }
    if evidence is not None:
        entry["evidence"] = evidence
    append_audit(settings, entry)
    log.info("registry change", extra={k: v for k, v in entry.items() if k != "gate"})


# -- promote and rollback ----------------------------------------------------------------------
def _swap_champion(
    settings: Settings, new: str, crowned: list[ModelRecord], promoted_at: str
) -> None:
    """Label ``new`` champion, then archive the others.

    The new champion is written before the old one is archived: a reader in
    between sees two champions and takes the later ``promoted_at``, never none.
    Every file is prepared before the first is written, so that moment lasts
    a few renames, not a few YAML parses.
    """
    crown = prepare_stage(settings, new, CHAMPION, promoted_at=promoted_at)
    retire = [prepare_stage(settings, o.tag, ARCHIVED) for o in crowned if o.tag != new]
    crown.commit()
    for update in retire:
        update.commit()


def promote(
    settings: Settings,
    tag: str,
    config: GateConfig | None = None,
    force: bool = False,
    reason: str | None = None,
    user: str | None = None,
) -> Outcome:
    """Make ``tag`` the champion if it passes the gate (or ``force``, with a reason)."""
    if force and not (reason and reason.strip()):
        raise ValueError("--force needs a --reason: it is recorded in the audit log")
    config = config or GateConfig.from_env()
    with registry_lock(settings):
        candidate = get_model(settings, tag)
        require_promotable(candidate, settings.data_dir)
        crowned = champions(settings)
        current = crowned[0] if crowned else None
        if current is not None and current.tag == candidate.tag:
            raise RegistryError(f"{candidate.tag} is already the champion")
        gate = run_gate(settings, candidate, current, config)
        old = current.tag if current else None
        if not gate.passed and not force:
            outcome = Outcome(
                "promote_refused", candidate.tag, old, old, gate, candidate.stage, reason
            )
            _record_change(settings, outcome, reason, user)
            return outcome
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        _swap_champion(settings, candidate.tag, crowned, now)
        _write_history(settings, [*read_history(settings), candidate.tag])
        action = "promote_forced" if force and not gate.passed else "promote"
        outcome = Outcome(action, candidate.tag, old, candidate.tag, gate, candidate.stage, reason)
        _record_change(settings, outcome, reason, user, forced=force and not gate.passed)
        return outcome


def rollback(
    settings: Settings,
    reason: str | None = None,
    user: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> Outcome:
    """Re-crown the previous champion; the current one is archived.

    ``evidence`` (e.g. the live comparison that motivated it) goes into the audit entry.
    """
    with registry_lock(settings):
        crowned = champions(settings)
        if not crowned:
            raise RegistryError("there is no champion to roll back")
        current = crowned[0]
        history = read_history(settings)
        if not history or history[-1] != current.tag:
            raise RegistryError(
                f"the champion history ({history_path(settings)}) does not end with the current "
                f"champion {current.tag}: labels were changed outside `python -m training`. "
                "Use `models promote TAG --force --reason ...` to choose a champion explicitly"
            )
        previous, keep = None, 0
        for index in range(len(history) - 2, -1, -1):
            if history[index] == current.tag:
                continue
            try:
                previous = get_model(settings, history[index])
            except RegistryError:
                continue  # deleted from the store since; look further back
            keep = index + 1
            break
        if previous is None:
            raise RegistryError(f"no earlier champion to roll back to from {current.tag}")
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        _swap_champion(settings, previous.tag, crowned, now)
        _write_history(settings, history[:keep])
        outcome = Outcome(
            "rollback", previous.tag, current.tag, previous.tag, stage=previous.stage, reason=reason
        )
        _record_change(settings, outcome, reason, user, evidence=evidence)
        return outcome
