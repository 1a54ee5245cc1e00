"""The loop's policy: when to retrain, on what, how to roll out, when to promote or roll back.

One YAML file (``conf/lifecycle/default.yaml`` by default), validated here by
pydantic: an unknown key or a bad value is an error that names it. Durations
are in days; instants are UTC.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from feature_repo.settings import PROJECT_ROOT

DEFAULT_POLICY = PROJECT_ROOT / "conf" / "lifecycle" / "default.yaml"
NAIVE_POLICY = PROJECT_ROOT / "conf" / "lifecycle" / "naive-monthly.yaml"


class PolicyError(ValueError):
    """The policy file is missing, not YAML, or not a valid policy; the message says which."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Triggers(_Strict):
    """What makes the loop train a challenger (any one of them, outside the cooldown)."""

    max_age_days: float | None = Field(
        7, gt=0, description="the champion's labels are older than this (None: never)"
    )
    monthly: bool = Field(False, description="at the first check of each calendar month")
    on_performance: bool = Field(True, description="live performance degraded (delayed labels)")
    on_drift: bool = Field(True, description="the calibrated drift policy failed")
    cooldown_days: float = Field(7, ge=0, description="no retrain sooner after the last one")


class TrainingWindow(_Strict):
    kind: Literal["expanding", "sliding"] = "expanding"
    start: date = Field(date(2013, 1, 1), description="first day of an expanding window")
    days: int | None = Field(None, gt=0, description="length of a sliding window")
    validation_days: int = Field(
        3, ge=1, description="the last days with knowable labels, held out for evaluation"
    )
    recency_half_life_days: float | None = Field(
        90, gt=0, description="sample weights halve every N days of age (None: equal weights)"
    )
    drop_features: tuple[str, ...] = Field(
        ("sched_month",), description="features left out (a month never seen cannot be learned)"
    )
    search: bool = Field(
        False, description="a full hyperparameter search; else reuse the champion's"
    )
    reference_days: int | None = Field(
        90, ge=1, description="the drift reference profiles the window's last N days (None: all)"
    )

    @model_validator(mode="after")
    def _sliding_needs_days(self) -> TrainingWindow:
        if self.kind == "sliding" and self.days is None:
            raise ValueError("a sliding window needs days")
        return self


class RolloutPolicy(_Strict):
    mode: Literal["live", "immediate"] = Field(
        "live",
        description="live: shadow (and canary), promote on paired evidence; "
        "immediate: the challenger replaces the champion at once (the naive baseline)",
    )
    shadow_days: float = Field(3, gt=0, description="shortest shadow before a verdict")
    max_shadow_days: float = Field(10, gt=0, description="give up when still unknown by then")
    canary_percent: float = Field(
        0, ge=0, le=100, description="after a passing shadow, this share of flights (0: none)"
    )
    canary_days: float = Field(2, gt=0, description="how long the canary runs before promotion")

    @model_validator(mode="after")
    def _ordered(self) -> RolloutPolicy:
        if self.max_shadow_days < self.shadow_days:
            raise ValueError("max_shadow_days must be at least shadow_days")
        return self


class Promotion(_Strict):
    min_labels: int = Field(1000, ge=1, description="labelled paired flights before a verdict")
    ci_unit: Literal["day", "flight"] = Field(
        "day",
        description="the unit of the ROC-AUC gain's 95% CI, for promotion and rollback alike: "
        "day (a jackknife over 24-hour blocks, Student's t; needs 3 days) or flight (DeLong's, "
        "flights independent: two to four times too narrow for flights that share a day)",
    )
    rule: Literal["not_worse", "non_inferior"] = Field(
        "not_worse",
        description="not_worse: once shadow_days are over, promote unless the CI's upper "
        "bound is below refuse_below; non_inferior: promote when its lower bound exceeds "
        "min_auc_gain, extend while it does not",
    )
    min_auc_gain: float = Field(
        -0.01,
        description="non_inferior: the 95% CI's lower bound of the ROC-AUC gain must exceed "
        "this; a small negative margin is a non-inferiority test",
    )
    refuse_below: float = Field(
        0.0, description="refuse at once when the CI's upper bound is below this"
    )
    max_auc_loss: float | None = Field(
        0.04,
        ge=0,
        description="not_worse: refuse when the ROC-AUC gain itself is below minus this, "
        "whatever the CI (three days are too few for a CI over days to condemn even a model "
        "at chance); about two standard deviations of a 3-day difference between two sound "
        "models (bench/paired_ci_calibration.py). None: the CI alone",
    )
    max_slice_drop: float = Field(
        0.05,
        ge=0,
        description="no slice may lose more ROC-AUC; under not_worse, a loss its CI also shows "
        "(the CI below zero), since a few hundred flights over three days lose 0.05 by chance",
    )
    min_slice_rows: int = Field(500, ge=1)
    resamples: int = Field(500, ge=100, description="bootstrap resamples of the comparison")


class Rollback(_Strict):
    watch_days: float = Field(3, gt=0, description="the old champion stays in shadow this long")
    min_labels: int = Field(500, ge=1)
    max_auc_loss: float = Field(
        0.0,
        description="roll back when the new champion's ROC-AUC gain over the old one has a "
        "95% CI entirely below minus this (judged when confirm_at says)",
    )
    confirm_at: Literal["every_check", "watch_end"] = Field(
        "every_check",
        description="when the CI test above is asked: at every daily check once the CI exists "
        "(from the third day; several looks at a 95% CI roll a sound champion back more often "
        "than one time in twenty, a 3-day watch has one), or once, on the whole watch at its "
        "end (it keeps its level; pair it with stop_loss)",
    )
    stop_loss: float | None = Field(
        None,
        gt=0,
        description="at any check once the CI exists: roll back at once when the new "
        "champion's ROC-AUC loss against the old one exceeds this, whatever the CI (0.06 is "
        "2.6 standard deviations of a 3-day difference between two sound models, so that "
        "a few daily looks stop a sound one about one time in forty). None: no early stop",
    )


class Monitoring(_Strict):
    check_at: time = Field(time(4, 0), description="the daily decision time, UTC")
    performance_days: int = Field(7, ge=1, description="the window live performance is judged on")
    performance_margin: float = Field(0.03, ge=0, description="allowed drop from validation")
    performance_min_labels: int = Field(1000, ge=1)
    drift_days: int = Field(1, ge=1, description="the served window drift is judged on")


class Policy(_Strict):
    name: str = "default"
    description: str = ""
    triggers: Triggers = Triggers()
    window: TrainingWindow = TrainingWindow()
    rollout: RolloutPolicy = RolloutPolicy()
    promotion: Promotion = Promotion()
    rollback: Rollback = Rollback()
    monitoring: Monitoring = Monitoring()

    def digest(self) -> str:
        """A short fingerprint: which policy produced a decision."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def load_policy(path: Path | None = None) -> Policy:
    path = path or DEFAULT_POLICY
    try:
        document: Any = yaml.safe_load(path.read_text())
    except OSError as err:
        raise PolicyError(f"cannot read the policy {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise PolicyError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(document, dict):
        raise PolicyError(f"{path}: expected a mapping of policy sections")
    try:
        return Policy(**document)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in err.errors()
        )
        raise PolicyError(f"{path}: {problems}") from None
