"""The loop's policy file and its pure decision rules (no data needed)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from lifecycle.controller import fitted_through, retrain_triggers, train_config
from lifecycle.policy import DEFAULT_POLICY, NAIVE_POLICY, Policy, PolicyError, load_policy

NOW = datetime(2013, 7, 15, 4, tzinfo=UTC)


def test_the_shipped_policies_load_and_the_default_file_matches_the_code_defaults() -> None:
    default = load_policy(DEFAULT_POLICY)
    # The README documents the defaults from the file; the code must not disagree.
    assert default.model_dump(exclude={"description"}) == Policy().model_dump(
        exclude={"description"}
    )
    naive = load_policy(NAIVE_POLICY)
    assert naive.triggers.monthly and naive.rollout.mode == "immediate"
    assert naive.window.drop_features == () and naive.window.recency_half_life_days is None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("triggers: {max_age_dayz: 3}", "triggers.max_age_dayz"),
        ("rollout: {canary_percent: 150}", "rollout.canary_percent"),
        ("window: {kind: sliding}", "window"),
        ("rollout: {shadow_days: 5, max_shadow_days: 2}", "rollout"),
        ("promotion: {resamples: 10}", "promotion.resamples"),
        ("promotion: {rule: superior}", "promotion.rule"),
        ("promotion: {ci_unit: hour}", "promotion.ci_unit"),
        ("promotion: {max_auc_loss: -0.1}", "promotion.max_auc_loss"),
        ("rollback: {confirm_at: sometimes}", "rollback.confirm_at"),
        ("rollback: {stop_loss: 0}", "rollback.stop_loss"),
        ("- not a mapping", "expected a mapping"),
        ("triggers: [unclosed", "not valid YAML"),
    ],
)
def test_a_bad_policy_file_is_refused_naming_what_is_wrong(
    tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    assert named in str(error.value) and str(path) in str(error.value)


def test_a_missing_policy_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nope\.yaml"):
        load_policy(tmp_path / "nope.yaml")


def test_triggers_fire_on_age_performance_and_drift_but_not_inside_the_cooldown() -> None:
    policy = Policy()
    fresh, stale = NOW - timedelta(days=3), NOW - timedelta(days=20)
    assert retrain_triggers(policy, NOW, fresh, None, False, False) == []
    assert retrain_triggers(policy, NOW, stale, None, False, False)[0].startswith("age")
    assert retrain_triggers(policy, NOW, fresh, None, True, False) == ["live performance degraded"]
    assert retrain_triggers(policy, NOW, fresh, None, False, True) == ["the drift policy failed"]
    recent = NOW - timedelta(days=2)  # inside the 7-day cooldown: nothing fires
    assert retrain_triggers(policy, NOW, stale, recent, True, True) == []


def test_the_monthly_trigger_fires_once_per_calendar_month() -> None:
    naive = load_policy(NAIVE_POLICY)
    assert retrain_triggers(naive, NOW, None, None, False, False) == ["a new month (2013-07)"]
    assert (
        retrain_triggers(naive, NOW, None, datetime(2013, 7, 1, 4, tzinfo=UTC), False, False) == []
    )
    assert (
        retrain_triggers(naive, NOW, None, datetime(2013, 6, 30, 4, tzinfo=UTC), False, False) != []
    )


def test_a_retrain_uses_knowable_labels_holds_out_the_last_days_and_reuses_the_params() -> None:
    policy = Policy()
    params = {"learning_rate": 0.05, "max_iter": 250}
    config = train_config(policy, NOW, params, {"by": "test"})
    assert config.valid_end == date(2013, 7, 14)  # the last complete day
    assert config.train_end == date(2013, 7, 11)  # three validation days held out
    assert config.train_start == date(2013, 1, 1)  # expanding
    assert config.as_of == datetime(2013, 7, 15, tzinfo=UTC) <= NOW
    assert config.candidates == [params]  # no search
    assert config.drop_features == ("sched_month",)
    assert config.recency_half_life_days == 90
    sliding = policy.model_copy(
        update={"window": policy.window.model_copy(update={"kind": "sliding", "days": 30})}
    )
    assert train_config(sliding, NOW, params, {}).train_start == date(2013, 6, 12)
    searching = policy.model_copy(
        update={"window": policy.window.model_copy(update={"search": True})}
    )
    assert len(train_config(searching, NOW, params, {}).candidates) > 1


def test_age_counts_from_the_end_of_the_fitted_window() -> None:
    assert fitted_through({"train_window": {"end": "2013-04-30"}}) == datetime(
        2013, 5, 1, tzinfo=UTC
    )
    assert fitted_through({}) is None
