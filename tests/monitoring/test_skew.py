"""Training/serving skew: value comparison rules, and a re-fetch from the real offline store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.skew import SkewInputError, check, compare_column

TAG = "flight_delay:skewtest"


def _context(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "flight_id": [f"f{i}" for i in range(n)],
            "served_at": pd.Timestamp("2013-07-01", tz="UTC"),
        }
    )


def test_values_match_when_equal_both_missing_or_within_tolerance() -> None:
    served = pd.Series([1.0, None, 3.0, 4.0, 5.0, None], dtype="object")
    offline = pd.Series([1.0 + 1e-12, np.nan, 3.5, np.nan, 5.0, 6.0])
    skew, flags = compare_column("x", served, offline, _context(6))
    assert list(flags) == [False, False, True, True, False, True]
    assert (skew.mismatches, skew.served_missing_only, skew.offline_missing_only) == (3, 1, 1)
    assert skew.max_abs_diff == pytest.approx(0.5)
    assert [e["flight_id"] for e in skew.examples] == ["f2", "f3", "f5"]
    assert skew.examples[0] == {
        "flight_id": "f2",
        "served_at": "2013-07-01T00:00:00+00:00",
        "served": 3.0,
        "offline": 3.5,
    }


def test_categories_compare_as_text_and_integers_as_numbers() -> None:
    served = pd.Series(["Fixed wing", None, "Rotorcraft"])
    offline = pd.Series(["Fixed wing", None, "Fixed wing"])
    skew, _ = compare_column("plane_type", served, offline, _context(3))
    assert skew.mismatches == 1 and skew.max_abs_diff is None
    # An Int64 column read back from Parquet with a null, against served floats.
    ints, _ = compare_column(
        "n", pd.Series([2.0, 3.0, np.nan]), pd.Series([2, 3, None], dtype="Int64"), _context(3)
    )
    assert ints.mismatches == 0


@pytest.fixture(scope="module")
def served_rows(pipeline) -> pd.DataFrame:
    """Training rows posing as served rows: their features are as of ``event_timestamp``."""
    frame = pipeline.training_set.frame.sample(n=150, random_state=1)
    frame = frame.rename(columns={"event_timestamp": "served_at"}).reset_index(drop=True)
    return frame.assign(model_tag=TAG)


def test_served_values_equal_to_point_in_time_offline_values_pass(
    pipeline, served_rows: pd.DataFrame
) -> None:
    result = check(
        served_rows,
        pipeline.store,
        {TAG: "flight_delay_v1"},
        source="test",
        window=(None, None),
        sample=100,
    )
    assert result.sampled_rows == 100 and result.available_rows == 150
    assert result.values_compared == 100 * len(result.columns) > 0
    assert result.mismatches == 0, [c for c in result.columns if c.mismatches]
    assert not result.failed and result.reasons == []


def test_an_altered_served_value_is_counted_and_named(pipeline, served_rows: pd.DataFrame) -> None:
    altered = served_rows.copy()
    altered.loc[3, "weather_hourly__temp_f"] = altered.loc[3, "weather_hourly__temp_f"] + 9.0
    altered.loc[4, "plane_attributes__plane_type"] = "Balloon"
    result = check(
        altered,
        pipeline.store,
        {TAG: "flight_delay_v1"},
        source="test",
        window=(None, None),
        sample=None,
    )
    differing = {c.column: c.mismatches for c in result.columns if c.mismatches}
    assert differing == {"weather_hourly__temp_f": 1, "plane_attributes__plane_type": 1}
    assert result.rows_with_mismatch == 2
    assert result.failed and "weather_hourly__temp_f (1)" in result.reasons[0]
    temp = next(c for c in result.columns if c.column == "weather_hourly__temp_f")
    assert temp.examples[0]["flight_id"] == altered.loc[3, "flight_id"]
    assert temp.max_abs_diff == pytest.approx(9.0)


def test_a_log_without_the_request_fields_is_refused(pipeline, served_rows: pd.DataFrame) -> None:
    with pytest.raises(SkewInputError, match="sched_dep_epoch"):
        check(
            served_rows.drop(columns=["sched_dep_epoch"]),
            pipeline.store,
            {TAG: "flight_delay_v1"},
            source="log-dir",
            window=(None, None),
        )
    with pytest.raises(SkewInputError, match="log-dir: no served rows"):
        check(served_rows.head(0), pipeline.store, {}, source="log-dir", window=(None, None))


def test_only_the_models_inputs_are_compared(pipeline, served_rows: pd.DataFrame) -> None:
    inputs = ["weather_hourly__temp_f", "carrier_perf_7d__late_share", "origin"]
    altered = served_rows.copy()
    # Not an input of this model: whatever the log holds there is not its business.
    altered["plane_attributes__seats"] = -1.0
    result = check(
        altered,
        pipeline.store,
        {TAG: "flight_delay_v1"},
        source="test",
        window=(None, None),
        inputs_of={TAG: inputs},
        sample=40,
    )
    assert sorted(c.column for c in result.columns) == sorted(inputs[:2])
    assert "plane_attributes__seats" in result.not_compared
    assert result.mismatches == 0
