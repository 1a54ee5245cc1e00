"""The model card: slices in the registry and the report, and the gate's bias checks."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.model.biased import shift_one_carrier
from tests.model.conftest import register

# Bounds the session's six-week models pass (their worst carrier is off by ~0.1
# in calibration and ~0.45 in FPR: few weeks of data, a 0.68 ROC-AUC model).
BOUNDS = {"max_calibration_gap": 0.15, "max_rate_disparity": 0.6}


def largest_carrier(trained) -> str:
    return trained.split.valid["carrier"].value_counts().index[0]


def test_the_card_is_stored_with_every_slice_family(pipeline, registered) -> None:
    from training.registry import get_model

    card = get_model(pipeline.settings, registered.record.tag).metadata["model_card"]
    assert set(card["slices"]) == {"carrier", "origin", "aircraft_age"}
    assert card["intended_use"] and card["limitations"]
    assert card["data_window"]["validation"]["start"] == "2013-02-08"
    valid = registered.trained.split.valid
    y = valid["label"].to_numpy()
    p = registered.trained.valid_proba
    ua = (valid["carrier"] == "UA").to_numpy()
    stats = card["slices"]["carrier"]["UA"]
    assert stats["rows"] == int(ua.sum())
    assert stats["late_share"] == pytest.approx(y[ua].mean())
    assert stats["calibration_gap"] == pytest.approx(p[ua].mean() - y[ua].mean())
    late = p[ua] >= card["threshold"]
    assert stats["fpr"] == pytest.approx((late & (y[ua] == 0)).sum() / (y[ua] == 0).sum())
    assert stats["fnr"] == pytest.approx((~late & (y[ua] == 1)).sum() / (y[ua] == 1).sum())
    bands = card["slices"]["aircraft_age"]
    assert sum(b["rows"] for b in bands.values()) == len(valid)
    assert "(unknown)" in bands and "0-4 years" in bands


def test_the_report_renders_the_model_card(registered) -> None:
    html = registered.report_html.read_text()
    card = html[html.index('<section id="model-card">') : html.index("</section>")]
    assert "Intended use" in card and "Known limitations" in card and "Data window" in card
    table = card[card.index('<div class="slice-table">') :]
    for family in ("carrier=", "origin=", "aircraft_age="):
        assert family in table
    assert "calibration gap" in table and "FPR" in table and "ROC-AUC" in table
    plots = re.findall(r'<img alt="(calibration_[a-z_]+)" src="data:image/png;base64,', card)
    assert plots == ["calibration_carrier", "calibration_origin", "calibration_aircraft_age"]


def test_a_candidate_biased_on_one_carrier_is_refused_by_name(registry, good) -> None:
    from training.promotion import GateConfig, promote, read_audit
    from training.registry import champion

    gate = GateConfig(**BOUNDS)
    good_tag = register(registry, good)
    first = promote(registry, good_tag, gate)
    assert first.action == "promote", first.gate.reasons

    carrier = largest_carrier(good)
    biased = shift_one_carrier(good, carrier, up=0.25)
    overall = biased.evaluation["card"]["overall"]
    # Calibrated overall (and ranking about as well), badly off on one carrier.
    assert abs(overall["calibration_gap"]) < 0.02
    before = good.evaluation["card"]["overall"]["calibration_gap"]
    assert abs(overall["calibration_gap"] - before) < 0.01
    outcome = promote(registry, register(registry, biased), gate)

    assert outcome.action == "promote_refused"
    refusal = next(r for r in outcome.gate.reasons if r.startswith("bias check failed"))
    assert f"carrier={carrier}" in refusal and "calibration gap" in refusal
    worst = outcome.gate.bias_findings[0]
    assert (worst["slice"], worst["measure"]) == (f"carrier={carrier}", "calibration_gap")
    assert worst["value"] > BOUNDS["max_calibration_gap"]
    assert champion(registry).tag == good_tag
    entry = read_audit(registry)[-1]
    assert entry["action"] == "promote_refused"
    assert entry["gate"]["bias_findings"][0]["slice"] == f"carrier={carrier}"


def test_the_bias_bounds_come_from_the_environment(monkeypatch) -> None:
    from training.promotion import GateConfig

    monkeypatch.setenv("FEASTLINE_GATE_MAX_CALIBRATION_GAP", "0.05")
    monkeypatch.setenv("FEASTLINE_GATE_MAX_RATE_DISPARITY", "0.2")
    config = GateConfig.from_env(max_rate_disparity=0.25)
    assert (config.max_calibration_gap, config.max_rate_disparity) == (0.05, 0.25)
    monkeypatch.setenv("FEASTLINE_GATE_MAX_CALIBRATION_GAP", "wide")
    with pytest.raises(ValueError, match="FEASTLINE_GATE_MAX_CALIBRATION_GAP must be a float"):
        GateConfig.from_env()
    with pytest.raises(ValueError, match="must be > 0"):
        GateConfig(max_rate_disparity=0)


def test_small_slices_are_listed_but_not_checked(good) -> None:
    from training.model_card import bias_findings, slice_table

    valid = good.split.valid
    y = valid["label"].to_numpy()
    p = np.where(valid["origin"] == "JFK", 0.95, good.valid_proba)  # JFK far off
    table = slice_table(valid, y, p, good.threshold, min_slice_rows=300)
    jfk = table["slices"]["origin"]["JFK"]
    assert jfk["checked"] and jfk["calibration_gap"] > 0.5
    over, _ = bias_findings(table, 0.15, 0.6, min_rows=300)
    assert "origin=JFK" in {f.slice for f in over}
    over, worst = bias_findings(table, 0.15, 0.6, min_rows=jfk["rows"] + 1)
    assert "origin=JFK" not in {f.slice for f in over}
    assert all(f is None or f.slice != "origin=JFK" for f in worst.values())


def test_the_model_card_renders_in_a_real_browser(registered, tmp_path) -> None:
    """Headless Chromium loads the report: each family's calibration plot decodes to an
    image, and the slice table has a row per slice."""
    import shutil
    import subprocess

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "headless Chromium is needed: apt-get install -y chromium"
    probe = """<script>window.addEventListener("load", () => {
      const card = document.getElementById("model-card");
      const plots = [...card.querySelectorAll("img")].map(i => i.alt + ":" + i.naturalWidth);
      const rows = card.querySelectorAll(".slice-table tbody tr").length;
      document.body.insertAdjacentHTML("beforeend",
        `<pre id="probe">${plots.join(",")}|${rows}</pre>`);
    });</script>"""
    page = tmp_path / "report.html"
    page.write_text(registered.report_html.read_text().replace("</body>", probe + "</body>"))
    dom = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    # The last match is the element the script wrote (the first is the script's own text).
    plots, rows = re.findall(r'<pre id="probe">([^<]*)</pre>', dom)[-1].split("|")
    widths = dict(item.split(":") for item in plots.split(","))
    assert set(widths) == {"calibration_carrier", "calibration_origin", "calibration_aircraft_age"}
    assert all(int(w) > 100 for w in widths.values()), widths
    card = registered.record.metadata["model_card"]
    assert int(rows) == 1 + sum(len(groups) for groups in card["slices"].values())
