"""The continuous-training loop, simulated on early March over the session's data.

Real everything: the feature pipeline ticks (ingest, build, materialize), the
service's scoring code and logs, real training into the BentoML registry, and
the monitoring that judges challengers on the labels knowable at "now".
"""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from feature_repo.settings import Settings
from lifecycle.policy import load_policy
from tests.integration.lifecycle_support import (
    START,
    STEP,
    audit,
    champions,
    copy_of,
    policy,
    sabotaged_trainer,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def loop_dir(lifecycle_base: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = copy_of(lifecycle_base, tmp_path / "data")
    monkeypatch.setenv("FEASTLINE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("BENTOML_HOME", str(settings.bentoml_home))
    return settings


def actions(settings: Settings) -> list[str]:
    return [e["action"] for e in audit(settings)]


def scheduled(settings: Settings, days: int) -> set[str]:
    requests = importlib.import_module(f"{settings.dataset_module}.requests")
    return {
        f["flight_id"]
        for offset in range(days)
        for f in requests.scheduled_flights(START + timedelta(days=offset))
    }


def test_the_loop_retrains_shadows_promotes_and_rolls_back_a_bad_champion(
    loop_dir: Settings,
) -> None:
    from lifecycle.controller import Controller
    from lifecycle.report import write_report
    from lifecycle.simulate import read_ledger, simulate
    from lifecycle.state import read_state
    from model_registry.rollout import read_rollout
    from training.rollout import promote_live

    settings = loop_dir
    static = champions(settings)[0]
    test_policy = policy()
    naive = load_policy(Path("conf/lifecycle/naive-monthly.yaml"))
    run = simulate(
        settings,
        test_policy,
        START,
        START + timedelta(days=3),
        baselines={"naive": naive},
        step=STEP,
    )

    # Retrained on March 1 (the champion was 15 days old), shadowed for three days, promoted
    # on live evidence: not shown worse on a CI over those days.
    decisions = [d["action"] for d in run.decisions]
    assert decisions[:2] == ["retrain", "shadow_start"], run.decisions
    assert "promote" in decisions, run.decisions
    (champion,) = champions(settings)
    assert champion != static
    promoted = next(d for d in run.decisions if d["action"] == "promote")
    assert promoted["tag"] == champion and promoted["evidence"]["labelled"] >= 300
    assert promoted["evidence"]["ci_unit"] == "day" and promoted["evidence"]["rule"] == "not_worse"
    assert promoted["evidence"]["ci"][1] >= 0  # not shown worse
    watch = read_rollout(settings)
    assert watch is not None and watch.challenger == static and watch.until is not None
    log = actions(settings)
    for expected in (
        "lifecycle_retrain",
        "rollout_shadow",
        "lifecycle_shadow_start",
        "promote_live",
        "lifecycle_promote",
    ):
        assert expected in log, log

    # Every scheduled flight was served once, and scored by every arm on the same features.
    ledger = read_ledger(settings)
    assert set(ledger["flight_id"]) == scheduled(settings, 4)
    assert ledger["static_probability"].notna().all()
    assert ledger["naive_probability"].notna().all()
    assert (ledger["static_tag"] == static).all()
    assert ledger["naive_tag"].iloc[-1] != static  # the naive arm retrained on March 1
    # It retrained beside the replay: the flights served meanwhile waited for its model,
    # so in time order the arm's tag changes once, at the retrain, never back and forth.
    tags = ledger.sort_values("served_at", kind="stable")["naive_tag"]
    assert (tags != tags.shift()).sum() == 2, tags.drop_duplicates()

    # A second tick at the same "now" does nothing.
    state = read_state(settings)
    before = (Path(settings.state_dir / "lifecycle.json").read_text(), len(audit(settings)))
    again = Controller(settings, test_policy).tick(datetime.fromisoformat(state.last_tick))
    assert again.skipped
    after = (Path(settings.state_dir / "lifecycle.json").read_text(), len(audit(settings)))
    assert after == before

    # Force a bad promotion: a challenger blind to every delay history, crowned on forged
    # evidence. The loop must roll it back within the watch period, saying why: once three
    # 24-hour blocks from the promotion hold labelled flights, at the check of March 8.
    now = datetime.fromisoformat(state.last_tick)
    from monitoring.registry import champion as current

    bad = sabotaged_trainer(settings, test_policy, now, current(settings).metadata, {"by": "test"})
    forged = {
        "challenger": bad,
        "overall": {
            "labelled": 5000,
            "metrics": {"roc_auc": {"difference": 0.05, "ci_low": 0.04, "ci_high": 0.06}},
        },
        "slices": [],
    }
    from training.promotion import GateConfig

    promote_live(
        settings, bad, GateConfig(), forged, watch=timedelta(days=4), reason="sabotage test: forced"
    )
    assert champions(settings) == [bad]
    # The rollback variant that asks its CI once, at the watch's end, and stops a plain
    # loss at any check (the default asks the CI daily: tests/code/test_live_gate.py).
    rest = simulate(
        settings,
        policy(rollback={"confirm_at": "watch_end", "stop_loss": 0.06}),
        START + timedelta(days=4),
        START + timedelta(days=7),
        baselines={"naive": naive},
        step=STEP,
    )
    rollback = [d for d in rest.decisions if d["action"] == "rollback"]
    assert rollback, rest.decisions
    assert champions(settings) == [champion]
    when = datetime.fromisoformat(rollback[0]["now"])
    assert when - now <= timedelta(days=4)  # within the watch period
    entry = next(e for e in audit(settings) if e["action"] == "rollback")
    assert entry["old_champion"] == bad and "worse" in entry["reason"]
    assert rollback[0]["evidence"]["old_minus_new_roc_auc"] > 0
    # Before the watch's end, only a loss past the stop loss rolls back: the CI over the
    # watch is asked once, at its end.
    assert rollback[0]["evidence"]["test"] == "stop_loss", rollback[0]
    assert "past the stop loss" in rollback[0]["reason"]

    summary = write_report(settings, rest)
    assert Path(summary["report"]).exists()
    assert summary["decisions"]["rollback"] == 1
    assert {"static", "naive"} <= set(summary["headline"])
    # Redrawn from the records alone (`python -m lifecycle report`): the same headline,
    # the policy named from the audit log, and the run's timing kept from its summary.
    redrawn = write_report(settings, None)
    assert redrawn["headline"] == summary["headline"]
    assert redrawn["policy"] == summary["policy"] == rest.policy
    assert redrawn["run"] == summary["run"]


def test_a_sabotaged_challenger_never_serves_beyond_its_canary_share(loop_dir: Settings) -> None:
    from lifecycle.simulate import read_ledger, simulate

    settings = loop_dir
    static = champions(settings)[0]
    canary_policy = policy(
        rollout={"canary_percent": 20, "canary_days": 1}, triggers={"cooldown_days": 0}
    )
    run = simulate(
        settings,
        canary_policy,
        START,
        START + timedelta(days=3),
        trainer=sabotaged_trainer,
        step=STEP,
    )
    decisions = [(d["action"], d.get("tag")) for d in run.decisions]
    sabotaged = {tag for action, tag in decisions if action == "retrain"}
    assert sabotaged, decisions
    assert not sabotaged & set(champions(settings)), decisions
    assert champions(settings) == [static]
    assert any(action == "refuse" for action, _ in decisions), run.decisions
    # Shadow answers nothing; a canary at most its share, and only once it passed shadow.
    ledger = read_ledger(settings)
    answered = ledger[ledger["model_tag"].isin(sabotaged)]
    assert (answered["role"] == "canary").all()
    assert len(answered) <= 0.2 * len(ledger) * 1.1
