"""Shadow and canary rollout of a challenger, and promotion on paired live evidence.

``models rollout TAG --shadow`` / ``--canary PERCENT`` make ``TAG`` the one
challenger (``model_registry.rollout`` holds the state serving reads);
``models rollout --stop`` ends it. ``models promote TAG --live`` judges the
challenger on the flights both models scored, with the labels known at the
clock's "now" (``monitoring.compare_models``), instead of the offline
validation window. After a live promotion the previous champion stays in
shadow for a watch period, so a rollback can still be judged on live evidence.
Every change, and every refusal of a promotion, goes to the audit log.
"""

from __future__ import annotations

import getpass
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from feature_repo.clock import Clock, parse_duration
from feature_repo.settings import Settings
from model_registry import ARCHIVED, CHAMPION
from model_registry.rollout import (
    CANARY,
    SHADOW,
    Rollout,
    read_rollout,
    rollout_path,
    write_rollout,
)
from training.promotion import (
    GateConfig,
    Outcome,
    _swap_champion,
    append_audit,
    read_history,
    require_promotable,
)
from training.registry import ModelRecord, RegistryError, champions, get_model, registry_lock

log = logging.getLogger(__name__)

WATCH_ENV = "FEASTLINE_ROLLOUT_WATCH"
DEFAULT_WATCH = "7d"


class RolloutRefused(RegistryError):
    """A rollout change was refused; nothing was changed."""


def watch_period(text: str | None = None) -> timedelta:
    """How long a replaced champion stays in shadow: ``--watch``, else the environment, else 7d."""
    return parse_duration(text or os.environ.get(WATCH_ENV) or DEFAULT_WATCH)


def _audit(
    settings: Settings, action: str, tag: str | None, user: str | None, **extra: Any
) -> None:
    entry = {
        "ts": datetime.now(UTC).isoformat(timespec="seconds"),
        "user": user or getpass.getuser(),
        "action": action,
        "tag": tag,
        **extra,
    }
    append_audit(settings, entry)
    log.info("rollout change", extra={k: v for k, v in entry.items() if k != "evidence"})


def _challenger_record(settings: Settings, tag: str) -> ModelRecord:
    record = get_model(settings, tag)  # ModelNotFound names the registry for an unknown tag
    if record.stage == CHAMPION:
        raise RolloutRefused(f"{record.tag} is the champion; a challenger must be another model")
    if record.stage == ARCHIVED:
        raise RolloutRefused(
            f"{record.tag} is archived (a former champion); roll back to it with "
            "`models rollback`, or retrain"
        )
    require_promotable(record)  # serving needs its inputs, feature service and threshold
    return record


def start(
    settings: Settings,
    tag: str,
    mode: str,
    percent: float = 0.0,
    reason: str | None = None,
    user: str | None = None,
) -> Rollout:
    """Make ``tag`` the challenger in ``mode``; changing the current challenger's mode is fine."""
    if mode == CANARY and not 0 < percent <= 100:
        raise RolloutRefused(f"--canary takes a percentage in (0, 100], got {percent:g}")
    with registry_lock(settings):
        record = _challenger_record(settings, tag)
        if not champions(settings):
            raise RolloutRefused("there is no champion to compare a challenger with")
        current = read_rollout(settings)
        if current is not None and current.challenger != record.tag:
            raise RolloutRefused(
                f"{current.challenger} is already the challenger ({current.describe()}); "
                "at most one at a time: `models rollout --stop` first"
            )
        rollout = Rollout(
            challenger=record.tag,
            mode=mode,
            percent=percent if mode == CANARY else 0.0,
            started_at=Clock(settings).now().instant.isoformat(timespec="seconds"),
            reason=reason,
        )
        write_rollout(settings, rollout)
        _audit(
            settings,
            f"rollout_{mode}",
            record.tag,
            user,
            previous=current.to_dict() if current else None,
            rollout=rollout.to_dict(),
            reason=reason,
        )
    return rollout


def stop(settings: Settings, reason: str | None = None, user: str | None = None) -> Rollout:
    """End the rollout: all traffic goes back to the champion alone."""
    with registry_lock(settings):
        current = read_rollout(settings)
        if current is None:
            raise RolloutRefused(f"no rollout in progress ({rollout_path(settings)})")
        write_rollout(settings, None)
        _audit(settings, "rollout_stop", current.challenger, user, previous=current.to_dict(),
               reason=reason)  # fmt: skip
    return current


# -- promotion on live evidence --------------------------------------------------------------
@dataclass
class LiveGateResult:
    passed: bool
    reasons: list[str]
    candidate: str
    champion: str | None
    config: dict[str, Any]
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


NON_INFERIOR, NOT_WORSE = "non_inferior", "not_worse"
LIVE_RULES = (NON_INFERIOR, NOT_WORSE)


def shown_worse(auc: dict[str, Any], below: float, max_loss: float | None = None) -> bool:
    """The evidence shows the challenger worse: the ROC-AUC gain's 95% CI lies below
    ``below``, or the gain itself below ``-max_loss`` (``auc``: a compare-models metric)."""
    return auc["ci_high"] < below or (max_loss is not None and -auc["difference"] > max_loss)


def live_gate(
    comparison: dict[str, Any],
    config: GateConfig,
    rule: str = NON_INFERIOR,
    max_loss: float | None = None,
) -> tuple[bool, list[str]]:
    """The gate on a compare-models result (its JSON document).

    ``non_inferior``: the lower bound of the 95% CI of the ROC-AUC gain must exceed
    ``min_gain``. ``not_worse``: its upper bound must not lie below ``min_gain``, so the
    challenger passes unless the evidence shows it worse (for an interval as wide as the
    noise of a few days, the only test a sound, fresher model can pass), and the gain
    itself must not fall below ``-max_loss``: three days are too few for a CI over days to
    condemn even a model at chance, whose loss is nonetheless plain. Either way no
    slice with at least ``min_slice_rows`` labelled flights may lose more than
    ``max_slice_drop`` ROC-AUC (point estimate of the paired difference); under
    ``not_worse`` such a loss must also be shown, the slice's CI lying below zero, as
    the whole's must: a slice of a few hundred flights over three days loses 0.05 by
    chance alone, and the point estimate held sound challengers back.
    """
    if rule not in LIVE_RULES:
        raise ValueError(f"the live gate's rule is one of {', '.join(LIVE_RULES)}, not {rule!r}")
    reasons: list[str] = []
    overall = comparison["overall"]
    auc = overall["metrics"].get("roc_auc")
    passed = True
    flights = f"({overall['labelled']:,} labelled flights)"
    if auc is None or auc.get("ci_low") is None:
        passed = False
        reasons.append(
            f"no ROC-AUC gain to judge on {overall['labelled']} labelled flights "
            "(both classes, and for a CI over days three days, needed)"
        )
    else:
        gain = (f"ROC-AUC gain {auc['difference']:+.4f}, 95% CI [{auc['ci_low']:+.4f}, "
                f"{auc['ci_high']:+.4f}]")  # fmt: skip
        if rule == NON_INFERIOR and auc["ci_low"] > config.min_gain:
            reasons.append(f"{gain}, lower bound above {config.min_gain} {flights}")
        elif rule == NON_INFERIOR:
            passed = False
            reasons.append(f"{gain}: the lower bound does not exceed {config.min_gain} {flights}")
        elif shown_worse(auc, config.min_gain, max_loss):
            passed = False
            reasons.append(
                f"{gain}: worse, the upper bound is below {config.min_gain} {flights}"
                if shown_worse(auc, config.min_gain)
                else f"{gain}: loses more than {max_loss} {flights}"
            )
        else:
            reasons.append(f"{gain}: not shown worse, upper bound not below {config.min_gain}"
                           + (f", loss within {max_loss}" if max_loss is not None else "")
                           + f" {flights}")  # fmt: skip
    judged, worse, unshown = 0, [], []
    for part in comparison["slices"]:
        slice_auc = part["metrics"].get("roc_auc")
        if part["labelled"] < config.min_slice_rows or slice_auc is None:
            continue
        judged += 1
        if -slice_auc["difference"] <= config.max_slice_drop:
            continue
        high = slice_auc.get("ci_high")
        if rule == NOT_WORSE and high is not None and high >= 0:
            unshown.append(f"{part['slice']} {slice_auc['difference']:+.4f}")
            continue
        worse.append(f"{part['slice']} {slice_auc['difference']:+.4f}")
    shown = " (and shown by its CI, where it has one)" if rule == NOT_WORSE else ""
    if worse:
        passed = False
        reasons.append(
            f"{len(worse)} slice(s) lose more than {config.max_slice_drop} ROC-AUC{shown}: "
            + ", ".join(worse)
        )
    else:
        reasons.append(
            f"no slice loses more than {config.max_slice_drop} ROC-AUC{shown} ({judged} "
            f"slices with >= {config.min_slice_rows} labelled flights judged)"
        )
    if unshown:
        reasons.append(f"within the noise (a CI reaching zero): {', '.join(unshown)}")
    return passed, reasons


def promote_live(
    settings: Settings,
    tag: str,
    config: GateConfig,
    comparison: dict[str, Any],
    evidence_path: str | None = None,
    watch: timedelta | None = None,
    reason: str | None = None,
    user: str | None = None,
    rule: str = NON_INFERIOR,
    max_loss: float | None = None,
) -> tuple[Outcome, LiveGateResult, Rollout | None]:
    """Promote the challenger ``tag`` if the paired live comparison passes the gate
    (:func:`live_gate` under ``rule``).

    ``comparison`` is what ``monitoring.compare_models`` produced for ``tag``
    (also written to ``evidence_path``). The previous champion then stays in
    shadow for ``watch``, on the clock serving uses.
    """
    watch = watch if watch is not None else watch_period()
    with registry_lock(settings):
        candidate = get_model(settings, tag)
        require_promotable(candidate)
        crowned = champions(settings)
        current = crowned[0] if crowned else None
        if current is None:
            raise RolloutRefused("no champion yet: promote the first model with the offline gate")
        if current.tag == candidate.tag:
            raise RolloutRefused(f"{candidate.tag} is already the champion")
        if comparison.get("challenger") != candidate.tag:
            raise RolloutRefused(
                f"the live comparison is about {comparison.get('challenger')}, not {candidate.tag}"
            )
        passed, reasons = live_gate(comparison, config, rule, max_loss)
        gate = LiveGateResult(
            passed=passed,
            reasons=reasons,
            candidate=candidate.tag,
            champion=current.tag,
            config={**asdict(config), "rule": rule, "max_loss": max_loss},
            evidence=_evidence(comparison, evidence_path),
        )
        if not passed:
            outcome = Outcome("promote_live_refused", candidate.tag, current.tag, current.tag)
            _audit(settings, outcome.action, candidate.tag, user, old_champion=current.tag,
                   new_champion=current.tag, reason=reason, gate=gate.to_dict())  # fmt: skip
            return outcome, gate, read_rollout(settings)
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        _swap_champion(settings, candidate.tag, crowned, now)
        from training.promotion import _write_history

        _write_history(settings, [*read_history(settings), candidate.tag])
        until = Clock(settings).now().instant + watch
        watching = Rollout(
            challenger=current.tag,
            mode=SHADOW,
            started_at=Clock(settings).now().instant.isoformat(timespec="seconds"),
            until=until.isoformat(),
            reason=f"watch period after promoting {candidate.tag} on live evidence",
        )
        write_rollout(settings, watching)
        outcome = Outcome("promote_live", candidate.tag, current.tag, candidate.tag)
        _audit(settings, outcome.action, candidate.tag, user, old_champion=current.tag,
               new_champion=candidate.tag, reason=reason, gate=gate.to_dict(),
               rollout=watching.to_dict())  # fmt: skip
        return outcome, gate, watching


def _evidence(comparison: dict[str, Any], path: str | None) -> dict[str, Any]:
    """What the audit entry keeps: the overall paired result, judged slices, and the file."""
    return {
        "path": path,
        "window": comparison.get("window"),
        "now": comparison.get("now"),
        "champions": comparison.get("champions"),
        "challenger": comparison.get("challenger"),
        "verdict": comparison.get("verdict"),
        "overall": comparison.get("overall"),
        "slices": [
            {"slice": s["slice"], "labelled": s["labelled"], "roc_auc": s["metrics"].get("roc_auc")}
            for s in comparison.get("slices", [])
        ],
    }


def clear_if_crowned(settings: Settings) -> None:
    """After a rollback the shadowed former champion may be champion again: end its shadow."""
    current = read_rollout(settings)
    crowned = champions(settings)
    if current is not None and crowned and crowned[0].tag == current.challenger:
        write_rollout(settings, None)
        _audit(settings, "rollout_stop", current.challenger, None, previous=current.to_dict(),
               reason="the challenger became champion again")  # fmt: skip
