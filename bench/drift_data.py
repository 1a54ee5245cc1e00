"""Data for the drift benchmarks: January–July flights scored by a January–May model.

``prepare`` works in its own data directory (default: ``<tmp>/feastline-bench-drift``,
kept between runs, never ``./data``): it ingests the raw layer through July,
trains a model on January–April with May as validation (``--grid small``; its
reference profile, calibration and permutation importance come from training,
as in production), builds the January–July training set and scores it with
that model. Each step is skipped when its output is already there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = Path(tempfile.gettempdir()) / "feastline-bench-drift"
START, FIT_END, REFERENCE_END, END = "2013-01-01", "2013-04-30", "2013-05-31", "2013-07-31"


@dataclass(frozen=True)
class Scored:
    """Model inputs, probability and label per flight, with ``_time`` and ``_day`` (UTC)."""

    frame: pd.DataFrame
    columns: list[str]  # what served profiles hold: the model inputs and the probability
    model_tag: str
    reference_path: Path


def _run(argv: list[str], env: dict[str, str], console: Console) -> None:
    console.print(f"[dim]$ {' '.join(argv[1:])}[/dim]")
    subprocess.run(argv, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def prepare(data_dir: Path | None, console: Console):  # type: ignore[no-untyped-def]
    from feature_repo.settings import Settings
    from model_registry import resolve_data_path
    from monitoring.calibration import null_path, read_calibration
    from monitoring.profiles import read_profile
    from monitoring.reference import PREDICTION_COLUMN
    from training.registry import list_models, load_pipeline

    data_dir = Path(data_dir or DEFAULT_DIR).resolve()
    env = {**os.environ, "FEASTLINE_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    settings = Settings.from_env(data_dir=data_dir)
    python = sys.executable
    dataset = settings.data_dir / "datasets" / "training_20130101_20130731.parquet"
    if not dataset.exists():
        _run([python, "-m", "feature_repo", "ingest", "--through", END], env, console)
        _run([python, "-m", "feature_repo", "apply"], env, console)
        _run([python, "-m", "training", "build-dataset", "--start", START, "--end", END], env,
             console)  # fmt: skip

    def reference_of(model: Any) -> Path | None:
        return resolve_data_path(settings.data_dir, model.metadata.get("reference_profile"))

    models = [m for m in list_models(settings) if reference_of(m) is not None]
    usable = [m for m in models if null_path(reference_of(m)).exists()]  # type: ignore[arg-type]
    if not usable:
        _run([python, "-m", "training", "train", "--train-start", START, "--train-end", FIT_END,
              "--valid-end", REFERENCE_END, "--grid", "small"], env, console)  # fmt: skip
        usable = [m for m in list_models(settings) if reference_of(m) is not None]
    model = usable[-1]
    reference_path = reference_of(model)
    assert reference_path is not None
    inputs = [str(c) for c in model.metadata["model_inputs"]]
    frame = pd.read_parquet(dataset)
    scored = frame[[*inputs, "label", "event_timestamp"]].copy()
    with threadpool_limits(limits=1, user_api="openmp"):
        pipeline = load_pipeline(settings, model.tag)
        scored[PREDICTION_COLUMN] = pipeline.predict_proba(frame[inputs])[:, 1]
    scored["_time"] = pd.to_datetime(scored["event_timestamp"], utc=True)
    scored["_day"] = scored["_time"].dt.date
    console.print(f"[dim]model {model.tag}, {len(scored):,} flights {START} .. {END}[/dim]")
    return (
        Scored(scored, [*inputs, PREDICTION_COLUMN], model.tag, reference_path),
        read_profile(reference_path),
        read_calibration(null_path(reference_path)),
    )
