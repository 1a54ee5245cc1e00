"""Behavioural checks in the Made-With-ML spirit: perturb inputs, watch the prediction."""

from __future__ import annotations

import numpy as np

HEAVY_PRECIPITATION_IN = 0.3  # inches in the hour: about the wettest 0.1% of hours
LOW_VISIBILITY_MI = 0.5


def _predict(trained, frame) -> np.ndarray:
    from training.model import predict_proba

    return predict_proba(trained.pipeline, frame, trained.inputs.columns)


def test_bad_weather_at_the_origin_does_not_lower_the_late_probability(good) -> None:
    """Directional: heavy rain and fog at the origin should not make flights look more punctual."""
    valid = good.split.valid
    stormy = valid.copy()
    stormy["weather_hourly__precip_in"] = HEAVY_PRECIPITATION_IN
    stormy["weather_hourly__visibility_mi"] = LOW_VISIBILITY_MI
    assert _predict(good, stormy).mean() >= _predict(good, valid).mean()


def test_the_flight_number_does_not_change_the_prediction(good) -> None:
    """Invariance: flight numbers are labels for schedules, not causes of delay."""
    valid = good.split.valid
    renumbered = valid.copy()
    # flight_id is <day>-<carrier><number>-<origin>; give every flight another number.
    parts = renumbered["flight_id"].str.extract(r"^(\d{8})-([A-Z0-9]{2})(\d+)-(\w+)$")
    assert parts.notna().all().all()
    new_numbers = (parts[2].astype(int) + 4321).astype(str)
    renumbered["flight_id"] = parts[0] + "-" + parts[1] + new_numbers + "-" + parts[3]
    renumbered["flight"] = new_numbers.astype(int)
    assert not (renumbered["flight_id"] == valid["flight_id"]).any()
    assert np.array_equal(_predict(good, renumbered), _predict(good, valid))
    assert not {"flight_id", "flight", "tailnum"} & set(good.inputs.columns)
