"""A deliberately biased model for the bias checks: one carrier's scores shifted up,
everyone else's down by as much in total, so the model stays calibrated overall."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd


class CarrierShift:
    """Wraps a fitted Pipeline; ``predict_proba`` as the registry contract expects."""

    def __init__(self, pipeline, carrier: str, up: float, down: float) -> None:
        self.pipeline, self.carrier, self.up, self.down = pipeline, carrier, up, down

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = self.pipeline.predict_proba(frame)[:, 1]
        ours = (frame["carrier"] == self.carrier).to_numpy()
        shifted = np.clip(np.where(ours, p + self.up, p - self.down), 0.0, 1.0)
        return np.column_stack([1 - shifted, shifted])


def shift_one_carrier(trained, carrier: str, up: float, min_slice_rows: int = 300):
    """``trained`` with ``carrier``'s validation scores raised by ``up`` and the rest
    lowered so the mean prediction is unchanged; metrics and model card recomputed."""
    from training.evaluate import evaluate
    from training.model_card import slice_table

    valid = trained.split.valid
    ours = (valid["carrier"] == carrier).to_numpy()
    down = up * ours.sum() / (~ours).sum()
    wrapped = CarrierShift(trained.pipeline, carrier, up, down)
    p = wrapped.predict_proba(valid[trained.inputs.columns])[:, 1]
    y = valid[trained.label].to_numpy()
    evaluation = evaluate(trained.split.train, valid, trained.label, p, trained.threshold)
    evaluation["card"] = slice_table(valid, y, p, trained.threshold, min_slice_rows)
    return dataclasses.replace(trained, pipeline=wrapped, valid_proba=p, evaluation=evaluation)
