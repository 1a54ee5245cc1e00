"""A writer killed mid-interval leaves only whole files under final names."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from monitoring.profiles import profile_files, read_profile

# Replays July weather as fast as it can, one simulated minute per row, into
# hourly profiles and prediction parts that are re-written continuously
# (checkpoint every wake-up), so a kill at any moment likely lands mid-write.
WRITER = """
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from feature_repo.flights.source import default_source_dir, read_source
from monitoring.predictions import PredictionLog
from monitoring.profiler import ProfileLogger

out = Path(sys.argv[1])
weather = read_source(default_source_dir())["weather"]
july = weather[weather["month"] == 7].drop(columns=["time_hour"]).reset_index(drop=True)
profiles = ProfileLogger(
    out / "profiles", timedelta(hours=1), time_column="t",
    checkpoint_seconds=0.0, max_wait_seconds=0.001, batch_size=20,
)
predictions = PredictionLog(
    out / "predictions", timedelta(hours=1), checkpoint_seconds=0.0, max_wait_seconds=0.001
)
start = datetime(2013, 7, 1, tzinfo=UTC)
print("ready", flush=True)
minute = 0
while True:
    for offset in range(0, len(july), 20):
        chunk = july.iloc[offset : offset + 20].copy()
        chunk["t"] = [start + timedelta(minutes=minute + i) for i in range(len(chunk))]
        profiles.log(chunk)
        for i, row in enumerate(chunk.itertuples()):
            predictions.record(f"f{minute + i}", row.t, float(row.temp) / 100, "m:1")
        minute += len(chunk)
"""


def test_a_killed_writer_leaves_no_partial_profile(tmp_path: Path) -> None:
    from whylogs.core import DatasetProfileView

    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, str(script), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(list((out / "profiles").glob("*.bin"))) < 3:
            time.sleep(0.05)
        time.sleep(0.3)  # mid-interval: the current hour is being re-written continuously
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    finals = sorted((out / "profiles").glob("*.bin"))
    assert len(finals) >= 3
    rows = []
    for path in finals:
        view = DatasetProfileView.read(str(path))
        rows.append(view.get_column("temp").get_metric("counts").n.value)
        assert read_profile(path).rows == rows[-1]
    # One row per simulated minute: closed hours are whole, the open one is a checkpoint.
    assert rows[:-1] == [60] * (len(rows) - 1)
    assert 0 < rows[-1] <= 60
    # Leftover temporaries (if the kill hit a write) are hidden and never listed.
    assert profile_files([out / "profiles"]) == finals

    parts = sorted((out / "predictions").glob("*.parquet"))
    assert parts
    for path in parts:
        assert pq.read_table(path).num_rows > 0
