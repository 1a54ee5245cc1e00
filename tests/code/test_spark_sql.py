"""The DuckDB feature SQL transpiles to Spark SQL, with parameters bound as UTC literals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from feature_repo.flights import SQL_DIR
from feature_repo.spark_sql import bind_parameters, to_spark_sql

PARAMS = {
    "window_start": datetime(2013, 1, 1, tzinfo=UTC),
    "window_end": datetime(2013, 1, 31, 23, 59, 59, 999999, tzinfo=UTC),
    "static_known_since": datetime(2013, 1, 1, tzinfo=UTC),
}


@pytest.mark.parametrize("path", sorted(SQL_DIR.glob("*.sql")), ids=lambda p: p.stem)
def test_every_feature_query_transpiles_to_spark(path) -> None:
    spark = to_spark_sql(path.read_text(), PARAMS)
    assert "$" not in spark
    assert "QUALIFY" not in spark.upper() and "::" not in spark
    assert "'2013-01-31 23:59:59.999999+00:00'" in spark or "window_end" not in path.read_text()


def test_parameters_are_bound_as_utc_timestamps() -> None:
    local = datetime.fromisoformat("2013-01-01T01:00:00+01:00")
    assert bind_parameters("SELECT $t", {"t": local}) == (
        "SELECT CAST('2013-01-01 00:00:00.000000+00:00' AS TIMESTAMPTZ)"
    )


def test_a_missing_or_naive_parameter_is_refused_by_name() -> None:
    with pytest.raises(KeyError, match=r"\$other"):
        bind_parameters("SELECT $other", PARAMS)
    with pytest.raises(ValueError, match=r"\$t must be timezone-aware"):
        bind_parameters("SELECT $t", {"t": datetime(2013, 1, 1)})
