"""``python -m lifecycle tick`` killed mid-tick (SIGKILL), then run again at the same "now".

Three points: during training (killed from outside once the training set is
stored), between the registry write and the rollout change, and after the
rollout change before the intent is cleared. The next tick finishes the work:
one challenger, in shadow, one champion, and each decision audited once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from feature_repo.settings import Settings
from lifecycle.controller import KILL_ENV
from tests.integration.lifecycle_support import TEST_POLICY, audit, champions, copy_of

pytestmark = pytest.mark.integration

NOW = datetime(2013, 3, 1, 4, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def tick_command(settings: Settings, policy: Path) -> tuple[list[str], dict[str, str]]:
    env = {
        **os.environ,
        "FEASTLINE_DATA_DIR": str(settings.data_dir),
        "BENTOML_HOME": str(settings.bentoml_home),
        "PYTHONPATH": str(ROOT),
    }
    env.pop(KILL_ENV, None)
    argv = [
        sys.executable,
        "-m",
        "lifecycle",
        "tick",
        "--now",
        NOW.isoformat(),
        "--policy",
        str(policy),
        "-q",
    ]
    return argv, env


def killed_during_training(settings: Settings, policy: Path) -> int:
    """Start a tick and SIGKILL it once it has announced a retrain (the fit is under way)."""
    from lifecycle.state import read_state

    argv, env = tick_command(settings, policy)
    child = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and child.poll() is None:
        intent = read_state(settings).intent
        if intent is not None and intent.action == "train":
            time.sleep(1.0)  # into the training run
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    return child.wait(timeout=60)


@pytest.mark.parametrize("point", ["training", "after_register", "after_rollout"])
def test_a_killed_tick_is_finished_by_the_next_one(
    lifecycle_base: Settings, tmp_path: Path, point: str
) -> None:
    from lifecycle.state import read_state
    from model_registry.rollout import read_rollout
    from training.registry import list_models

    settings = copy_of(lifecycle_base, tmp_path / "data")
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(TEST_POLICY))
    static = champions(settings)

    if point == "training":
        code = killed_during_training(settings, policy)
    else:
        argv, env = tick_command(settings, policy)
        code = subprocess.run(
            argv, env={**env, KILL_ENV: point}, cwd=ROOT, timeout=600, capture_output=True
        ).returncode
    assert code == -signal.SIGKILL
    assert read_state(settings).intent is not None  # the step in flight was announced

    argv, env = tick_command(settings, policy)
    finished = subprocess.run(argv, env=env, cwd=ROOT, timeout=600, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-3000:]

    loop_models = [
        m.tag
        for m in list_models(settings)
        if (m.metadata.get("origin") or {}).get("by") == "lifecycle"
    ]
    assert len(loop_models) == 1, loop_models  # trained once, never twice
    rollout = read_rollout(settings)
    assert rollout is not None and rollout.challenger == loop_models[0]
    assert champions(settings) == static
    assert read_state(settings).intent is None
    actions = [e["action"] for e in audit(settings)]
    for once in ("lifecycle_retrain", "lifecycle_shadow_start", "rollout_shadow"):
        assert actions.count(once) == 1, actions

    if point == "after_rollout":  # and a third tick at that "now" does nothing (once is enough)
        again = subprocess.run(argv, env=env, cwd=ROOT, timeout=600, capture_output=True, text=True)
        assert again.returncode == 0 and "nothing to do" in again.stdout
        assert [e["action"] for e in audit(settings)] == actions
