"""One step of the loop at the clock's "now": ``python -m lifecycle tick``.

A tick brings the features up to now (``feature_repo``'s one step: ingest,
build, materialize), and once a day, at the policy's check time, monitors and
decides (:meth:`Controller.check`):

- during a watch period (the replaced champion in shadow after a promotion):
  roll back when the paired live evidence says the new champion is worse;
- while a challenger is in shadow or canary: wait for the shadow length, then
  promote on paired live evidence, move to canary, extend, or refuse;
- otherwise: train a challenger when a trigger fires (age, live performance,
  drift, a new month) outside the cooldown, and put it in shadow.

Every decision goes to the registry's audit log with its trigger and evidence,
and to the loop's timeline (``<data>/lifecycle/timeline.jsonl``).

Idempotent: a tick at an instant no later than the last completed one does
nothing. Crash-safe: a step that changes the registry is announced first (an
*intent* in ``state/lifecycle.json``) and cleared after, so the next tick
finishes a step a killed one started, and never trains twice for one trigger.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from feature_repo.atomic_io import append_json_line
from feature_repo.settings import Settings
from lifecycle.policy import Policy, Rollback
from lifecycle.state import Intent, LifecycleState, iso, read_state, write_state

log = logging.getLogger(__name__)

# Fault injection for the crash tests: the process SIGKILLs itself at the named point
# (``after_register``: the challenger is in the registry, the rollout unchanged;
# ``after_rollout``: the rollout changed, the intent not yet cleared).
KILL_ENV = "FEASTLINE_LIFECYCLE_KILL_AT"


def kill_point(name: str) -> None:
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Decision:
    """What the loop did or chose not to do, why, and on what evidence."""

    action: str
    now: str
    reason: str
    trigger: str | None = None
    tag: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, {}, "")}


@dataclass
class TickResult:
    now: datetime
    skipped: bool = False
    checked: bool = False
    materialized_rows: int = 0
    decisions: list[Decision] = field(default_factory=list)
    observation: dict[str, Any] = field(default_factory=dict)
    seconds_features: float = 0.0
    seconds_training: float = 0.0


# How a challenger is trained; a test swaps in a sabotaged trainer.
Trainer = Callable[[Settings, Policy, datetime, dict[str, Any], dict[str, Any]], str]


def lifecycle_dir(settings: Settings) -> Path:
    return settings.data_dir / "lifecycle"


def timeline_path(settings: Settings) -> Path:
    return lifecycle_dir(settings) / "timeline.jsonl"


def last_complete_day(now: datetime) -> date:
    """The last UTC day that is over at ``now``."""
    return (now.astimezone(UTC) - timedelta(days=1)).date()


def train_config(
    policy: Policy, now: datetime, champion_params: dict[str, Any], origin: dict[str, Any]
) -> Any:
    """The training run a retrain at ``now`` makes: labels knowable at now, the last
    ``validation_days`` complete days held out, the champion's hyperparameters reused."""
    from training.train import TrainConfig

    window = policy.window
    valid_end = last_complete_day(now)
    train_end = valid_end - timedelta(days=window.validation_days)
    if window.kind == "sliding":
        assert window.days is not None  # the policy's validator makes sure
        train_start = train_end - timedelta(days=window.days - 1)
    else:
        train_start = window.start
    # Reused hyperparameters are a one-point grid (the search is skipped); else the full one.
    grid = None if window.search else {k: [v] for k, v in champion_params.items()}
    # Training sets are cut at the raw layer's daily watermark (complete days): labels
    # knowable by the start of today, a few hours before the daily check.
    as_of = datetime.combine(valid_end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return TrainConfig(
        train_start=train_start,
        train_end=train_end,
        valid_end=valid_end,
        drop_features=tuple(window.drop_features),
        recency_half_life_days=window.recency_half_life_days,
        as_of=as_of,
        origin=origin,
        reference_days=window.reference_days,
        param_grid=grid,
    )


def train_challenger(
    settings: Settings,
    policy: Policy,
    now: datetime,
    champion_metadata: dict[str, Any],
    origin: dict[str, Any],
) -> str:
    """Train and register a candidate (not promoted); returns its tag."""
    from training.train import train_and_register

    config = train_config(policy, now, dict(champion_metadata.get("params") or {}), origin)
    return train_and_register(settings, config).record.tag


def retrain_triggers(
    policy: Policy,
    now: datetime,
    fitted_through: datetime | None,
    last_retrain: datetime | None,
    performance_failed: bool,
    drift_failed: bool,
) -> list[str]:
    """The triggers that fire at ``now`` (none inside the cooldown after the last retrain)."""
    triggers = policy.triggers
    if last_retrain is not None and now - last_retrain < timedelta(days=triggers.cooldown_days):
        return []
    fired = []
    this_month = (now.year, now.month)
    if triggers.monthly and (
        last_retrain is None or (last_retrain.year, last_retrain.month) != this_month
    ):
        fired.append(f"a new month ({now:%Y-%m})")
    if triggers.max_age_days is not None and fitted_through is not None:
        age = (now - fitted_through) / timedelta(days=1)
        if age >= triggers.max_age_days:
            fired.append(
                f"age: the champion's newest training data is {age:.1f} days old "
                f"(max {triggers.max_age_days:g})"
            )
    if triggers.on_performance and performance_failed:
        fired.append("live performance degraded")
    if triggers.on_drift and drift_failed:
        fired.append("the drift policy failed")
    return fired


def rollback_test(auc: dict[str, Any], rules: Rollback, final: bool) -> str | None:
    """Why a watched champion goes back, or None. ``auc``: the old champion's paired ROC-AUC
    gain over the new one (a compare-models metric); ``final``: the watch's last check.

    ``ci`` when its 95% CI lies above ``max_auc_loss``, asked at every check (the default)
    or, with ``confirm_at: watch_end``, at the watch's last one only; ``stop_loss`` when the
    gain itself exceeds ``stop_loss``, at any check. No CI yet (fewer than three days with
    labels): neither.
    """
    low, loss = auc.get("ci_low"), auc.get("difference")
    if low is None or loss is None:
        return None
    if (final or rules.confirm_at == "every_check") and low > rules.max_auc_loss:
        return "ci"
    if rules.stop_loss is not None and loss > rules.stop_loss:
        return "stop_loss"
    return None


def fitted_through(metadata: dict[str, Any]) -> datetime | None:
    """The end of the newest day the model was fitted on (its training window's end)."""
    text = (metadata.get("train_window") or {}).get("end")
    if not text:
        return None
    return datetime.combine(
        date.fromisoformat(text) + timedelta(days=1), datetime.min.time(), tzinfo=UTC
    )


class Controller:
    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        *,
        trainer: Trainer = train_challenger,
        materialize: bool = True,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.trainer = trainer
        self.materialize = materialize
        self._materializer: Any = None

    # -- the tick ---------------------------------------------------------------------
    def tick(self, now: datetime) -> TickResult:
        now = now.astimezone(UTC)
        state = read_state(self.settings)
        result = TickResult(now=now)
        done = state.last_tick is not None and now <= datetime.fromisoformat(state.last_tick)
        if done and state.intent is None:
            result.skipped = True
            return result
        if self.materialize:
            started = time.perf_counter()
            result.materialized_rows = self._features(now)
            result.seconds_features = time.perf_counter() - started
        if state.intent is not None:
            self._resume(state, now, result)
        if self._check_due(state, now):
            self.check(state, now, result)
            state.last_check_day = now.date().isoformat()
        state.last_tick = iso(now)
        write_state(self.settings, state)
        return result

    def _features(self, now: datetime) -> int:
        from feature_repo.materialize import Materializer

        if self._materializer is None:
            self._materializer = Materializer(self.settings)
        return int(self._materializer.run(now=now, wait_seconds=60).rows)

    def check_due(self, now: datetime) -> bool:
        """Whether a tick at ``now`` would monitor and decide."""
        return self._check_due(read_state(self.settings), now.astimezone(UTC))

    def _check_due(self, state: LifecycleState, now: datetime) -> bool:
        if now.timetz().replace(tzinfo=None) < self.policy.monitoring.check_at:
            return False
        return state.last_check_day != now.date().isoformat()

    # -- monitoring and decisions ------------------------------------------------------
    def check(self, state: LifecycleState, now: datetime, result: TickResult) -> None:
        from model_registry.rollout import read_rollout
        from monitoring.registry import champion

        result.checked = True
        current = champion(self.settings)
        observation = self._observe(current.tag, now)
        result.observation = observation
        rollout = read_rollout(self.settings)
        if rollout is not None and rollout.challenger != current.tag:
            if rollout.until is not None:
                self._judge_watch(rollout, current.tag, now, result)
            else:
                self._judge_challenger(state, rollout, current.tag, now, result)
        else:
            self._maybe_retrain(state, current.tag, current.metadata, observation, now, result)
        self._record(observation, result)

    def _observe(self, tag: str, now: datetime) -> dict[str, Any]:
        """Drift of the last served window and live performance: the evidence for triggers."""
        from monitoring.drift import DriftInputError
        from monitoring.live import live_performance, window_drift
        from monitoring.performance import PerformanceInputError, PerformancePolicy

        monitoring = self.policy.monitoring
        observation: dict[str, Any] = {"now": iso(now), "champion": tag}
        # Whole days only: a day's profile covers all its hours, and a partial one (the
        # night's flights alone) would drift on the hour of day by construction.
        midnight = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
        try:
            drift = window_drift(
                self.settings, tag, midnight - timedelta(days=monitoring.drift_days), midnight
            )
        except DriftInputError as err:
            drift, observation["drift_error"] = None, str(err)
        if drift is not None:
            observation.update(
                drift_share=round(drift.drift_share, 4),
                drift_failed=drift.failed,
                drifted=[c.column for c in drift.drifted][:8],
            )
        policy = PerformancePolicy(
            margin=monitoring.performance_margin,
            metrics=("roc_auc",),
            min_labels=monitoring.performance_min_labels,
        )
        window = (now - timedelta(days=monitoring.performance_days), now)
        try:
            performance = live_performance(self.settings, window, now, policy, model_tag=tag)
        except PerformanceInputError as err:
            observation["performance_error"] = str(err)
        else:
            overall = performance.models[0].overall
            observation.update(
                live_roc_auc=None if overall.roc_auc is None else round(overall.roc_auc, 4),
                labelled=overall.labelled,
                performance_failed=performance.failed,
            )
        return observation

    def _maybe_retrain(
        self,
        state: LifecycleState,
        tag: str,
        metadata: dict[str, Any],
        observation: dict[str, Any],
        now: datetime,
        result: TickResult,
    ) -> None:
        last = datetime.fromisoformat(state.last_retrain) if state.last_retrain else None
        fired = retrain_triggers(
            self.policy,
            now,
            fitted_through(metadata),
            last,
            bool(observation.get("performance_failed")),
            bool(observation.get("drift_failed")),
        )
        if not fired:
            return
        trigger = "; ".join(fired)
        intent = Intent("train", iso(now), uuid.uuid4().hex[:12], trigger)
        state.intent = intent
        write_state(self.settings, state)  # announced before the registry changes
        self._train(state, intent, metadata, now, result)

    def _train(
        self,
        state: LifecycleState,
        intent: Intent,
        metadata: dict[str, Any],
        now: datetime,
        result: TickResult,
    ) -> None:
        origin = {
            "by": "lifecycle",
            "run_id": intent.run_id,
            "trigger": intent.trigger,
            "policy": self.policy.name,
            "policy_digest": self.policy.digest(),
            "now": intent.now,
        }
        started = time.perf_counter()
        tag = self.trainer(self.settings, self.policy, now, metadata, origin)
        result.seconds_training += time.perf_counter() - started
        kill_point("after_register")
        state.last_retrain = intent.now
        self._decide(
            result,
            "retrain",
            now,
            f"trained challenger {tag}",
            intent.trigger,
            tag,
            {"run_id": intent.run_id},
        )
        state.intent = Intent("rollout", intent.now, intent.run_id, intent.trigger, tag)
        write_state(self.settings, state)
        self._start_rollout(state, now, result)

    def _start_rollout(self, state: LifecycleState, now: datetime, result: TickResult) -> None:
        from training.promotion import GateConfig, promote
        from training.rollout import start

        intent = state.intent
        assert intent is not None and intent.tag is not None
        if self.policy.rollout.mode == "immediate":
            outcome = promote(
                self.settings,
                intent.tag,
                GateConfig(),
                force=True,
                reason=f"lifecycle ({self.policy.name}): immediate replacement; "
                f"trigger: {intent.trigger}",
            )
            self._decide(
                result,
                "promote",
                now,
                "immediate replacement (policy)",
                intent.trigger,
                intent.tag,
                {"outcome": outcome.action},
            )
        else:
            start(
                self.settings,
                intent.tag,
                "shadow",
                reason=f"lifecycle: retrained on trigger: {intent.trigger}",
            )
            self._decide(
                result, "shadow_start", now, "challenger in shadow", intent.trigger, intent.tag
            )
        kill_point("after_rollout")
        state.intent = None
        write_state(self.settings, state)

    def _resume(self, state: LifecycleState, now: datetime, result: TickResult) -> None:
        """Finish the step a killed tick announced."""
        from model_registry.rollout import read_rollout
        from training.registry import list_models

        intent = state.intent
        assert intent is not None
        if intent.action == "train":
            made = [
                m
                for m in list_models(self.settings)
                if (m.metadata.get("origin") or {}).get("run_id") == intent.run_id
            ]
            if not made:  # killed before the model was registered: train again
                from monitoring.registry import champion

                log.info("resuming an interrupted retrain", extra={"run_id": intent.run_id})
                self._train(
                    state,
                    intent,
                    champion(self.settings).metadata,
                    datetime.fromisoformat(intent.now),
                    result,
                )
                return
            tag = made[-1].tag
            state.last_retrain = intent.now
            self._decide(
                result,
                "retrain",
                now,
                f"trained challenger {tag} (registered by a tick "
                "that was killed before its rollout)",
                intent.trigger,
                tag,
                {"run_id": intent.run_id},
            )
            intent = state.intent = Intent(
                "rollout", intent.now, intent.run_id, intent.trigger, tag
            )
            write_state(self.settings, state)
        rollout = read_rollout(self.settings)
        if rollout is not None and rollout.challenger == intent.tag:  # it had started
            state.intent = None
            write_state(self.settings, state)
            return
        log.info("resuming an interrupted rollout start", extra={"tag": intent.tag})
        self._start_rollout(state, now, result)

    def _compare(self, challenger: str, since: datetime, now: datetime, min_labels: int) -> Any:
        from monitoring.compare_models import ComparisonInputError, compare_models

        try:
            return compare_models(
                self.settings,
                challenger,
                (since, now),
                min_labels=min_labels,
                resamples=self.policy.promotion.resamples,
                ci_unit=self.policy.promotion.ci_unit,
            )
        except ComparisonInputError:
            return None

    def _judge_challenger(
        self,
        state: LifecycleState,
        rollout: Any,
        champion_tag: str,
        now: datetime,
        result: TickResult,
    ) -> None:
        from training.promotion import GateConfig
        from training.rollout import live_gate, promote_live, shown_worse, start, stop

        policy = self.policy
        since = datetime.fromisoformat(rollout.started_at)
        age = (now - since) / timedelta(days=1)
        plan = policy.rollout
        wanted = plan.canary_days if rollout.mode == "canary" else plan.shadow_days
        if age < wanted:
            return
        promotion = policy.promotion
        comparison = self._compare(rollout.challenger, since, now, promotion.min_labels)
        not_worse = promotion.rule == "not_worse"
        gate = GateConfig(
            min_gain=promotion.refuse_below if not_worse else promotion.min_auc_gain,
            max_slice_drop=promotion.max_slice_drop,
            min_slice_rows=promotion.min_slice_rows,
        )
        document = comparison.to_dict() if comparison is not None else None
        labelled = comparison.overall.labelled if comparison is not None else 0
        auc = (document or {}).get("overall", {}).get("metrics", {}).get("roc_auc") or {}
        evidence = {
            "labelled": labelled,
            "roc_auc_gain": auc.get("difference"),
            "ci": [auc.get("ci_low"), auc.get("ci_high")],
            "ci_unit": promotion.ci_unit,
            "rule": promotion.rule,
            "mode": rollout.mode,
            "days": round(age, 2),
        }
        give_up = age >= policy.rollout.max_shadow_days
        if document is None or labelled < promotion.min_labels or auc.get("ci_low") is None:
            if give_up:
                stop(self.settings, reason="lifecycle: no verdict within max_shadow_days")
                self._decide(
                    result,
                    "refuse",
                    now,
                    "too few labelled flights to judge",
                    None,
                    rollout.challenger,
                    evidence,
                )
            else:
                self._decide(
                    result, "extend", now, "waiting for labels", None, rollout.challenger, evidence
                )
            return
        max_loss = promotion.max_auc_loss if not_worse else None
        passed, reasons = live_gate(document, gate, promotion.rule, max_loss)
        evidence["reasons"] = reasons
        if passed and rollout.mode == "shadow" and policy.rollout.canary_percent > 0:
            start(
                self.settings,
                rollout.challenger,
                "canary",
                policy.rollout.canary_percent,
                reason="lifecycle: passed shadow on paired live evidence",
            )
            self._decide(
                result, "canary_start", now, "; ".join(reasons), None, rollout.challenger, evidence
            )
            return
        if passed:
            outcome, _, _ = promote_live(
                self.settings,
                rollout.challenger,
                gate,
                document,
                watch=timedelta(days=policy.rollback.watch_days),
                reason=f"lifecycle ({policy.name}): paired live evidence",
                rule=promotion.rule,
                max_loss=max_loss,
            )
            self._decide(
                result,
                "promote",
                now,
                "; ".join(reasons),
                None,
                rollout.challenger,
                {**evidence, "outcome": outcome.action, "replaced": champion_tag},
            )
            return
        if shown_worse(auc, promotion.refuse_below, max_loss) or give_up:
            stop(self.settings, reason=f"lifecycle: refused: {'; '.join(reasons)}")
            self._decide(
                result, "refuse", now, "; ".join(reasons), None, rollout.challenger, evidence
            )
        else:
            self._decide(
                result, "extend", now, "; ".join(reasons), None, rollout.challenger, evidence
            )

    def _judge_watch(
        self, rollout: Any, champion_tag: str, now: datetime, result: TickResult
    ) -> None:
        """The replaced champion is in shadow: roll back if the new one is worse.

        Worse means a CI that shows it (by default at every check; with ``confirm_at:
        watch_end``, once, on the whole watch at its end, so that it keeps its 95% level),
        or a loss past ``stop_loss`` at any check, for a champion too plainly broken to
        be left serving until then (:func:`rollback_test`).
        """
        from training.promotion import rollback
        from training.rollout import clear_if_crowned, stop

        rules = self.policy.rollback
        since = datetime.fromisoformat(rollout.started_at)
        final = not rollout.active_at(now)  # the watch's last check
        comparison = self._compare(rollout.challenger, since, now, rules.min_labels)
        if comparison is not None and comparison.overall.labelled >= rules.min_labels:
            auc = comparison.to_dict()["overall"]["metrics"].get("roc_auc") or {}
            # The shadowed model is the old champion: its gain over the new one is positive
            # when the new champion is worse.
            low, loss = auc.get("ci_low"), auc.get("difference")
            test = rollback_test(auc, rules, final)
            evidence = {
                "labelled": comparison.overall.labelled,
                "old_minus_new_roc_auc": loss,
                "ci": [low, auc.get("ci_high")],
                "ci_unit": self.policy.promotion.ci_unit,
                "test": test,
                "old": rollout.challenger,
                "new": champion_tag,
            }
            if test is not None:
                outcome = rollback(
                    self.settings,
                    reason="lifecycle: the new champion is worse "
                    "than the one it replaced on paired live evidence",
                    evidence={"comparison": comparison.to_dict()},
                )
                clear_if_crowned(self.settings)
                why = "its CI" if test == "ci" else f"past the stop loss {rules.stop_loss}"
                self._decide(
                    result,
                    "rollback",
                    now,
                    f"old champion better: {loss:+.4f} ROC-AUC ({why}), "
                    f"95% CI [{low:+.4f}, {auc.get('ci_high'):+.4f}]",
                    None,
                    outcome.new_champion,
                    evidence,
                )
                return
        if final:
            stop(self.settings, reason="lifecycle: watch period over")
            self._decide(
                result, "watch_end", now, "watch period over, no rollback", None, champion_tag
            )

    # -- records ---------------------------------------------------------------------
    def _decide(
        self,
        result: TickResult,
        action: str,
        now: datetime,
        reason: str,
        trigger: str | None = None,
        tag: str | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> None:
        from training.promotion import append_audit

        decision = Decision(action, iso(now), reason, trigger, tag, evidence or {})
        result.decisions.append(decision)
        append_audit(
            self.settings,
            {
                **decision.to_dict(),
                "ts": datetime.now(UTC).isoformat(timespec="seconds"),
                "user": "lifecycle",
                "action": f"lifecycle_{action}",
                "policy": self.policy.name,
            },
        )
        log.info("lifecycle decision", extra=decision.to_dict())

    def _record(self, observation: dict[str, Any], result: TickResult) -> None:
        entry = {**observation, "decisions": [d.to_dict() for d in result.decisions]}
        append_json_line(entry, timeline_path(self.settings))
