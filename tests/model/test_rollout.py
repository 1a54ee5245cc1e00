"""Rollout of a challenger and promotion on paired live evidence, each on a private registry.

The live evidence is the prediction log the service writes during a rollout:
one row per model and flight, with its role. Here it is written through the
service's own writer (``monitoring.predictions.PredictionLog``) from the two
models' point-in-time scores of the validation flights, which is what the
service logs for them (tests/integration/test_rollout_serving.py checks that
to 1e-9); the outcomes come from the raw layer, known at the clock's now.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.model.conftest import WEAK_GRID, register
from tests.model.test_registry import snapshot, stages

NOW = "2013-03-03T00:00:00+00:00"
WINDOW = ["2013-02-07", "2013-03-01"]


@pytest.fixture
def live(registry, pipeline, monkeypatch):
    """The private registry, on the session's raw layer (outcomes), with the clock at NOW."""
    registry.data_dir.mkdir(parents=True, exist_ok=True)
    (registry.data_dir / "raw").symlink_to(pipeline.settings.raw_dir)
    monkeypatch.setenv("FEASTLINE_DATA_DIR", str(registry.data_dir))
    monkeypatch.setenv("FEASTLINE_NOW", NOW)
    return registry


def cli(*argv: str) -> int:
    from training.__main__ import main

    return main(list(argv))


def log_paired(settings, champion: tuple[str, object], challenger: tuple[str, object]) -> int:
    """Both models' validation scores in the prediction log, as a shadow rollout writes them."""
    from datetime import timedelta

    from monitoring import layout
    from monitoring.predictions import PredictionLog

    log = PredictionLog(layout.predictions_dir(settings), timedelta(days=1), writer_id="test")
    rows = 0
    for (tag, trained), role in ((champion, "champion"), (challenger, "shadow")):
        valid = trained.split.valid
        for flight_id, when, p in zip(
            valid["flight_id"], valid["event_timestamp"], trained.valid_proba, strict=True
        ):
            assert log.record(flight_id, when.to_pydatetime(), float(p), tag, role)
            rows += 1
    log.close()
    return rows


def render_in_chromium(page: Path) -> str:
    """The DOM real headless Chromium builds from ``page``; its daily plot must decode."""
    import shutil
    import subprocess

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is not installed (apt-get install -y chromium)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    # The image's natural width, written into the DOM by a script Chromium runs.
    probe = page.with_name("probe.html")
    probe.write_text(
        page.read_text().replace(
            "</body>",
            "<script>addEventListener('load', () => "
            "{ document.body.dataset.plot = document.images[0].naturalWidth; });</script>"
            "</body>",
        )
    )
    dom = subprocess.run(
        [binary, *flags, "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    probe.unlink()
    width = int(dom.split('data-plot="', 1)[1].split('"', 1)[0])
    assert width > 300, "the daily plot did not decode"
    return dom


def audit(settings) -> list[dict]:
    from training.promotion import read_audit

    return read_audit(settings)


def test_rollout_refuses_unknown_champion_and_archived_models(live, good, weak, capsys) -> None:
    from model_registry.rollout import read_rollout
    from training.promotion import promote

    first = register(live, weak, WEAK_GRID)
    promote(live, first)
    second = register(live, good)
    promote(live, second)  # `first` is archived now
    candidate = register(live, good)
    before = snapshot(live)
    assert cli("models", "rollout", "flight_delay:doesnotexist", "--shadow") == 1
    assert "no model flight_delay:doesnotexist" in capsys.readouterr().err
    assert cli("models", "rollout", second, "--shadow") == 1
    assert "is the champion" in capsys.readouterr().err
    assert cli("models", "rollout", first, "--canary", "10") == 1
    assert "archived" in capsys.readouterr().err
    assert cli("models", "rollout", candidate, "--canary", "0") == 1
    assert cli("models", "rollout", "--stop") == 1
    assert "no rollout in progress" in capsys.readouterr().err
    assert snapshot(live) == before  # refusals change nothing

    assert cli("models", "rollout", candidate, "--shadow", "--reason", "try it") == 0
    assert read_rollout(live).challenger == candidate
    other = register(live, good)
    assert cli("models", "rollout", other, "--shadow") == 1
    assert "at most one" in capsys.readouterr().err
    assert cli("models", "rollout", candidate, "--canary", "10") == 0
    rollout = read_rollout(live)
    assert (rollout.mode, rollout.percent) == ("canary", 10.0)
    capsys.readouterr()
    from training.__main__ import console

    console.width = 250  # the table must not be cut for the check
    assert cli("models", "list") == 0
    listing = capsys.readouterr().out
    assert "challenger, canary 10%" in listing
    assert cli("models", "rollout", "--stop") == 0
    assert read_rollout(live) is None
    actions = [(e["action"], e["tag"]) for e in audit(live) if e["action"].startswith("rollout")]
    assert actions == [
        ("rollout_shadow", candidate),
        ("rollout_canary", candidate),
        ("rollout_stop", candidate),
    ]
    assert audit(live)[-3]["reason"] == "try it"


def test_a_worse_challenger_is_reported_worse_and_refused(live, good, weak, capsys) -> None:
    from monitoring.cli import main as monitoring_main
    from training.promotion import promote

    champion = register(live, good)
    promote(live, champion)
    challenger = register(live, weak, WEAK_GRID)
    assert cli("models", "rollout", challenger, "--shadow") == 0
    log_paired(live, (champion, good), (challenger, weak))

    assert monitoring_main(["compare-models", "--challenger", challenger, "--window", *WINDOW]) == 3
    out = live.monitoring_dir / "compare_models"
    result = json.loads((out / "compare_models.json").read_text())
    auc = result["overall"]["metrics"]["roc_auc"]
    assert result["verdict"] == "worse" and auc["ci_high"] < 0
    assert result["overall"]["labelled"] > 5000
    assert result["champions"] == [champion]
    assert result["roles"] == {"shadow": len(weak.valid_proba)}
    assert {"carrier=UA", "origin=EWR"} <= {s["slice"] for s in result["slices"]}
    page = render_in_chromium(out / "compare_models.html")
    assert '<span id="verdict">worse</span>' in page
    assert "carrier=UA" in page and "DeLong" in page

    before = stages(live)
    assert cli("models", "promote", challenger, "--live", "--window", *WINDOW) == 3
    assert stages(live) == before
    entry = audit(live)[-1]
    assert entry["action"] == "promote_live_refused" and not entry["gate"]["passed"]
    assert entry["gate"]["evidence"]["overall"]["metrics"]["roc_auc"]["ci_high"] < 0
    assert "lower bound does not exceed" in " ".join(entry["gate"]["reasons"])
    # The loop's rule, by hand: refused too, since the whole CI lies below zero.
    not_worse = ("--rule", "not_worse", "--max-loss", "0.04")
    assert cli("models", "promote", challenger, "--live", "--window", *WINDOW, *not_worse) == 3
    entry = audit(live)[-1]
    assert entry["action"] == "promote_live_refused"
    assert (entry["gate"]["config"]["rule"], entry["gate"]["config"]["max_loss"]) == (
        "not_worse",
        0.04,
    )
    with pytest.raises(SystemExit, match="use them with --live"):
        cli("models", "promote", challenger, "--rule", "not_worse")
    assert stages(live) == before


def test_a_better_challenger_is_promoted_on_live_evidence(live, good, weak) -> None:
    from model_registry.rollout import read_rollout
    from training.promotion import promote

    champion = register(live, weak, WEAK_GRID)
    promote(live, champion)
    challenger = register(live, good)
    assert cli("models", "rollout", challenger, "--canary", "10") == 0
    log_paired(live, (champion, weak), (challenger, good))

    code = cli("models", "promote", challenger, "--live", "--window", *WINDOW, "--watch", "3d")
    assert code == 0
    assert stages(live) == {champion: "archived", challenger: "champion"}
    entry = audit(live)[-1]
    assert entry["action"] == "promote_live" and entry["gate"]["passed"]
    evidence = entry["gate"]["evidence"]
    assert evidence["verdict"] == "better"
    assert evidence["overall"]["metrics"]["roc_auc"]["ci_low"] > 0
    assert evidence["overall"]["labelled"] > 5000 and evidence["slices"]
    assert Path(evidence["path"]).is_file()
    # The old champion stays in shadow for the watch period, on the clock serving uses.
    watching = read_rollout(live)
    assert (watching.challenger, watching.mode) == (champion, "shadow")
    assert watching.until == "2013-03-06T00:00:00+00:00"
    assert entry["rollout"]["challenger"] == champion

    # During the watch period both are logged again, roles swapped; a rollback --live
    # records that comparison (the old champion as challenger), and ends its shadow.
    log_paired(live, (challenger, good), (champion, weak))
    assert cli("models", "rollback", "--live", "--reason", "test") == 0
    assert stages(live)[champion] == "champion"
    rollback = [e for e in audit(live) if e["action"] == "rollback"][-1]
    comparison = rollback["evidence"]["comparison"]
    assert comparison["challenger"] == champion and comparison["champions"] == [challenger]
    assert comparison["verdict"] == "worse"
    assert read_rollout(live) is None
