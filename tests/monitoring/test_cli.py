"""``python -m monitoring``: exit codes, outputs, alerts and bad input."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring import cli
from monitoring.profiles import Profile, profile_frame, read_profile, write_profile
from tests.monitoring.loopback import Webhook
from tests.monitoring.realdata import WEATHER_COLUMNS


@pytest.fixture(autouse=True)
def _quiet_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    # main() would install the JSON handler on the root logger of the whole test session.
    monkeypatch.setattr(cli, "configure_from_args", lambda *args: None)


@pytest.fixture
def profiles(
    tmp_path: Path, weather: pd.DataFrame, weather_jan: Profile
) -> dict[str, Path | list[Path]]:
    july = weather[weather["month"] == 7]
    weeks = [
        write_profile(profile_frame(rows[WEATHER_COLUMNS]), tmp_path / f"jul-w{week}.bin")
        for week, rows in july.groupby(july["time_hour"].dt.isocalendar().week)
    ]
    mask = np.random.default_rng(11).random(len(july)) < 0.5
    return {
        "jan": write_profile(weather_jan, tmp_path / "jan.bin"),
        "jul_weeks": weeks,
        "half_a": write_profile(profile_frame(july.loc[mask, WEATHER_COLUMNS]), tmp_path / "a.bin"),
        "half_b": write_profile(
            profile_frame(july.loc[~mask, WEATHER_COLUMNS]), tmp_path / "b.bin"
        ),
    }


def run(*args: object) -> int:
    return cli.main([str(a) for a in args])


def test_drift_exits_3_writes_reports_and_alerts(
    profiles: dict, tmp_path: Path, webhook: Webhook, capsys: pytest.CaptureFixture[str]
) -> None:
    out, alerts = tmp_path / "drift", tmp_path / "alerts.jsonl"
    code = run(
        "compare", "--reference", profiles["jan"], "--target", *profiles["jul_weeks"],
        "--out", out, "--critical", "temp", "--alert-jsonl", alerts,
        "--webhook", webhook.url, "--model-tag", "flight_delay:abc123",
    )  # fmt: skip
    assert code == cli.EXIT_DRIFT

    stdout = capsys.readouterr().out
    assert "temp" in stdout and "DRIFT" in stdout
    assert "drift: 8 of 10 features drifted (80%)" in stdout

    report = json.loads((out / "drift.json").read_text())
    assert report["failed"] is True
    assert "temp" in report["drifted"] and "origin" not in report["drifted"]
    assert report["model_tag"] == "flight_delay:abc123"
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 10
    assert "id='temp'" in html

    (line,) = alerts.read_text().splitlines()
    alert = json.loads(line)
    assert alert["model_tag"] == "flight_delay:abc123"
    assert set(alert["window"]) == {"start", "end"}
    drifted = {d["column"]: d for d in alert["drifted"]}
    assert drifted["temp"]["psi"] > 5 and drifted["temp"]["critical"] is True
    assert "critical columns drifted: temp" in alert["reasons"]
    assert webhook.received == [alert]


def test_no_drift_exits_0_without_alerts(profiles: dict, tmp_path: Path, webhook: Webhook) -> None:
    out, alerts = tmp_path / "drift", tmp_path / "alerts.jsonl"
    code = run(
        "compare", "--reference", profiles["half_a"], "--target", profiles["half_b"],
        "--out", out, "--alert-jsonl", alerts, "--webhook", webhook.url, "--no-html",
    )  # fmt: skip
    assert code == cli.EXIT_OK
    report = json.loads((out / "drift.json").read_text())
    assert report["failed"] is False and report["drifted"] == []
    assert not (out / "report.html").exists()
    assert not alerts.exists() and webhook.received == []


def test_an_unreachable_webhook_does_not_hide_the_drift(
    profiles: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    alerts = tmp_path / "alerts.jsonl"
    code = run(
        "compare", "--reference", profiles["jan"], "--target", *profiles["jul_weeks"],
        "--out", tmp_path / "drift", "--no-html", "--alert-jsonl", alerts,
        "--webhook", f"http://127.0.0.1:{port}/down",
    )  # fmt: skip
    assert code == cli.EXIT_DRIFT
    assert len(alerts.read_text().splitlines()) == 1
    assert "alert not delivered: webhook" in capsys.readouterr().err


@pytest.mark.parametrize("problem", ["missing", "empty", "corrupt", "no common columns"])
def test_bad_profiles_exit_2_naming_the_file(
    problem: str, profiles: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.bin"
    if problem == "empty":
        bad.write_bytes(b"")
    elif problem == "corrupt":
        bad.write_bytes(b"WHY1" + bytes(range(256)) * 8)
    elif problem == "no common columns":
        write_profile(profile_frame(pd.DataFrame({"unrelated": [1.0, 2.0]})), bad)
    code = run("compare", "--reference", profiles["jan"], "--target", bad, "--no-html")
    assert code == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert str(bad) in err.replace("\n", "")
    if problem == "no common columns":
        assert str(profiles["jan"]) in err.replace("\n", "") and "no columns in common" in err


def test_profile_a_parquet_file(
    source: dict[str, pd.DataFrame], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flights = source["flights"]
    july = flights.loc[flights["month"] == 7].assign(
        event_timestamp=lambda f: pd.to_datetime(f["time_hour"], utc=True)
    )
    parquet = tmp_path / "july.parquet"
    july.to_parquet(parquet)
    out = tmp_path / "july.bin"
    code = run("profile", "--input", parquet, "--out", out, "--exclude", "time_hour", "tailnum")
    assert code == cli.EXIT_OK
    profile = read_profile(out)
    assert profile.rows == len(july)
    assert "tailnum" not in profile.columns and "event_timestamp" not in profile.columns
    start, end = profile.window
    assert start == july["event_timestamp"].min().to_pydatetime()
    assert end == july["event_timestamp"].max().to_pydatetime()
    assert f"profile: {len(july):,} rows" in capsys.readouterr().out

    assert run("profile", "--input", tmp_path / "nope.parquet", "--out", out) == 2
    assert "nope.parquet: input file not found" in capsys.readouterr().err


def test_the_real_command_line(profiles: dict, tmp_path: Path) -> None:
    helped = subprocess.run(
        [sys.executable, "-m", "monitoring", "--help"], capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 0 and "python -m monitoring" in helped.stdout
    missing = tmp_path / "no-such-profile.bin"
    result = subprocess.run(
        [sys.executable, "-m", "monitoring", "compare", "--reference", str(missing),
         "--target", str(profiles["half_b"]), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert str(missing) in result.stderr.replace("\n", "")
    assert "Traceback" not in result.stderr


def test_a_feature_gone_missing_is_reported_and_plotted(
    profiles: dict, weather: pd.DataFrame, tmp_path: Path
) -> None:
    # Wind gusts are often unreported: a window where none are has no histogram.
    july = weather.loc[weather["month"] == 7, WEATHER_COLUMNS].assign(wind_gust=np.nan)
    target = write_profile(profile_frame(july), tmp_path / "no-gusts.bin")
    out = tmp_path / "drift"
    code = run("compare", "--reference", profiles["jan"], "--target", target, "--out", out)
    assert code == cli.EXIT_DRIFT
    report = json.loads((out / "drift.json").read_text())
    gust = next(c for c in report["columns"] if c["column"] == "wind_gust")
    assert gust["drifted"] and gust["target_null_share"] == 1.0
    assert "id='wind_gust'" in (out / "report.html").read_text()
