"""The promotion rules on a compare-models document (training.rollout.live_gate), and
the loop's rollback test (lifecycle.controller.rollback_test)."""

from __future__ import annotations

from typing import Any

import pytest

from training.promotion import GateConfig
from training.rollout import NON_INFERIOR, NOT_WORSE, live_gate


def document(
    difference: float | None, low: float | None, high: float | None, slices: int = 0
) -> dict[str, Any]:
    auc = {"difference": difference, "ci_low": low, "ci_high": high}
    return {
        "overall": {"labelled": 2500, "metrics": {"roc_auc": auc}},
        "slices": [
            {"slice": "carrier=UA", "labelled": 800, "metrics": {"roc_auc": {"difference": -0.2}}}
        ][:slices],
    }


@pytest.mark.parametrize(
    ("difference", "low", "high", "non_inferior", "not_worse"),
    [
        (+0.010, +0.004, +0.016, True, True),  # better on any reading
        (+0.005, -0.035, +0.045, False, True),  # a CI over days: unknown, so not shown worse
        (-0.020, -0.060, +0.020, False, True),  # a small loss within the noise
        (-0.030, -0.050, -0.010, False, False),  # worse: the whole CI below zero
        (-0.240, -0.528, +0.050, False, False),  # a model at chance over three days
    ],
)
def test_the_two_rules_on_the_same_evidence(
    difference: float, low: float, high: float, non_inferior: bool, not_worse: bool
) -> None:
    evidence = document(difference, low, high)
    assert live_gate(evidence, GateConfig(min_gain=-0.01), NON_INFERIOR)[0] is non_inferior
    passed, reasons = live_gate(evidence, GateConfig(min_gain=0.0), NOT_WORSE, max_loss=0.04)
    assert passed is not_worse, reasons


def test_not_worse_without_a_loss_bound_trusts_the_interval_alone() -> None:
    chance = document(-0.240, -0.528, +0.050)
    assert live_gate(chance, GateConfig(min_gain=0.0), NOT_WORSE)[0]
    passed, reasons = live_gate(chance, GateConfig(min_gain=0.0), NOT_WORSE, max_loss=0.04)
    assert not passed and "loses more than 0.04" in reasons[0]


def test_no_interval_yet_and_a_losing_slice_both_fail_either_rule() -> None:
    for rule in (NON_INFERIOR, NOT_WORSE):
        passed, reasons = live_gate(document(-0.01, None, None), GateConfig(), rule)
        assert not passed and "three days" in reasons[0]
        passed, reasons = live_gate(document(0.01, 0.0, 0.02, slices=1), GateConfig(), rule)
        assert not passed and "carrier=UA -0.2000" in reasons[-1]


def slice_evidence(low: float, high: float) -> dict[str, Any]:
    """A sound whole, and one slice that lost 0.2 on its point estimate."""
    evidence = document(+0.004, -0.030, +0.038, slices=1)
    evidence["slices"][0]["metrics"]["roc_auc"].update(ci_low=low, ci_high=high)
    return evidence


def test_not_worse_holds_a_slice_back_only_on_a_loss_its_ci_shows() -> None:
    gate = GateConfig(min_gain=0.0, max_slice_drop=0.05, min_slice_rows=500)
    passed, reasons = live_gate(slice_evidence(-0.41, +0.01), gate, NOT_WORSE, max_loss=0.04)
    assert passed, reasons
    assert "within the noise" in reasons[-1] and "carrier=UA -0.2000" in reasons[-1]
    passed, reasons = live_gate(slice_evidence(-0.41, -0.02), gate, NOT_WORSE, max_loss=0.04)
    assert not passed and "shown" in reasons[-1] and "carrier=UA -0.2000" in reasons[-1]


def test_non_inferior_still_judges_slices_on_their_point_estimate() -> None:
    gate = GateConfig(min_gain=-0.05, max_slice_drop=0.05, min_slice_rows=500)
    passed, reasons = live_gate(slice_evidence(-0.41, +0.01), gate, NON_INFERIOR)
    assert not passed and "carrier=UA -0.2000" in reasons[-1]


def test_an_unknown_rule_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="superior"):
        live_gate(document(0.0, -0.01, 0.01), GateConfig(), "superior")


@pytest.mark.parametrize(
    ("difference", "low", "final", "expected"),
    [
        (+0.008, +0.001, False, None),  # old better on its CI, mid-watch: asked at the end
        (+0.008, +0.001, True, "ci"),  # the same at the watch's end
        (+0.008, -0.004, True, None),  # at the end, within the noise: the new one stays
        (+0.240, -0.050, False, "stop_loss"),  # a broken champion goes back at once
        (+0.240, None, False, None),  # fewer than three days with labels: no verdict
        (-0.010, -0.030, True, None),  # the new champion is the better one
    ],
)
def test_rollback_asks_its_ci_once_and_stops_a_plain_loss_at_any_check(
    difference: float, low: float | None, final: bool, expected: str | None
) -> None:
    from lifecycle.controller import rollback_test
    from lifecycle.policy import Rollback

    auc = {"difference": difference, "ci_low": low, "ci_high": None if low is None else 0.5}
    rules = Rollback(confirm_at="watch_end", stop_loss=0.06)
    assert rollback_test(auc, rules, final) == expected


def test_the_default_rollback_asks_its_ci_at_every_check_without_a_stop_loss() -> None:
    from lifecycle.controller import rollback_test
    from lifecycle.policy import Rollback

    shown = {"difference": 0.008, "ci_low": 0.001, "ci_high": 0.015}
    assert rollback_test(shown, Rollback(), final=False) == "ci"
    broken = {"difference": 0.24, "ci_low": -0.05, "ci_high": 0.53}
    assert rollback_test(broken, Rollback(), final=False) is None
    assert rollback_test(broken, Rollback(), final=True) is None
    assert rollback_test(broken, Rollback(stop_loss=0.06), final=False) == "stop_loss"
