"""Three simulated weeks of the loop through the real service (``bentoml serve``) on real Redis.

The flights go over HTTP; the service follows the registry and the rollout the
loop changes (``/reload`` after each decision) and logs what it serves. The
loop must retrain, shadow and promote with zero failed requests, and the
served features must equal the offline store's, value for value, before and
after the promotion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from feature_repo.settings import Settings
from tests.integration.conftest import MAIN_REDIS, free_port
from tests.integration.lifecycle_support import START, STEP, champions, copy_of, policy
from tests.integration.serving_support import running_service

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WEEKS = 3


def skew(settings: Settings, start: datetime, end: datetime) -> subprocess.CompletedProcess:
    env_settings = {
        "FEASTLINE_DATA_DIR": str(settings.data_dir),
        "FEASTLINE_REDIS_URL": settings.redis_url or "",
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "monitoring",
            "skew",
            "--window",
            start.isoformat(),
            end.isoformat(),
            "--sample",
            "300",
            "-q",
        ],
        env={**os.environ, **env_settings, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_three_weeks_of_the_loop_through_the_service(
    lifecycle_base: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feature_repo.materialize import Materializer
    from lifecycle.simulate import read_ledger, simulate

    url = MAIN_REDIS.format(db=8)
    redis.Redis.from_url(url).flushdb()
    settings = copy_of(lifecycle_base, tmp_path / "data", redis_url=url)
    for name, value in (
        ("FEASTLINE_DATA_DIR", str(settings.data_dir)),
        ("BENTOML_HOME", str(settings.bentoml_home)),
        ("FEASTLINE_REDIS_URL", url),
        ("FEASTLINE_PROFILE_INTERVAL", "1d"),
    ):
        monkeypatch.setenv(name, value)
    Materializer(settings).run(now=datetime(2013, 2, 28, 22, tzinfo=UTC), wait_seconds=30)
    static = champions(settings)[0]
    loop_policy = policy(triggers={"max_age_days": 10, "cooldown_days": 7})
    try:
        with running_service(settings, free_port(), tmp_path / "service.log") as service:
            run = simulate(
                settings,
                loop_policy,
                START,
                START + timedelta(days=7 * WEEKS - 1),
                serve_url=service.url,
                step=STEP,
            )
    finally:
        redis.Redis.from_url(url).flushdb()

    assert run.failed_requests == 0
    ledger = read_ledger(settings)
    assert len(ledger) == run.flights > 15_000
    actions = [d["action"] for d in run.decisions]
    assert {"retrain", "shadow_start", "promote"} <= set(actions), run.decisions
    promoted = next(d for d in run.decisions if d["action"] == "promote")
    assert champions(settings) != [static]
    # The service answered with the champion the loop chose, from the tick after promotion on.
    when = datetime.fromisoformat(promoted["now"])
    served_at = ledger["served_at"].map(lambda t: t.to_pydatetime())
    before = ledger[served_at < when]
    after = ledger[served_at > when]
    assert set(before["model_tag"]) == {static}
    assert promoted["tag"] in set(after["model_tag"])
    shadowed = ledger[ledger["challenger_role"] == "shadow"]
    assert not shadowed.empty  # the service ran the challenger beside the champion

    for start, end in ((when - timedelta(days=2), when), (when, when + timedelta(days=2))):
        checked = skew(settings, start, end)
        assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]
        report = json.loads((settings.monitoring_dir / "skew" / "skew.json").read_text())
        assert report["values_compared"] > 5_000
        # Every served value equals the offline one, in every column.
        assert report["mismatches"] == 0, [c for c in report["columns"] if c["mismatches"]]
