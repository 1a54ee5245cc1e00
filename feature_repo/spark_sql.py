"""The feature tables' DuckDB SQL, as Spark SQL: one source of truth for both engines.

Each ``feature_repo/<dataset>/sql/*.sql`` is written for DuckDB. For Spark it is
transpiled by sqlglot (DuckDB dialect in, Spark dialect out): ``QUALIFY`` becomes
a filtered subquery, ``generate_series`` over a ``LATERAL`` becomes ``SEQUENCE``
and ``EXPLODE``, ``epoch()`` becomes ``UNIX_TIMESTAMP``, ``::`` casts become
``CAST``. Query parameters (``$window_start``...) are bound first, as UTC
timestamp literals, because Spark SQL has no named parameters of that form.
``tests/data/test_spark_engine.py`` checks that the two engines' tables agree value
for value.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

PARAMETER = re.compile(r"\$([A-Za-z_]\w*)")


def bind_parameters(sql: str, params: dict[str, datetime]) -> str:
    """Replace each ``$name`` with a DuckDB TIMESTAMPTZ literal of ``params[name]``."""

    def literal(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise KeyError(f"query parameter ${name} has no value (known: {sorted(params)})")
        value = params[name]
        if value.tzinfo is None:
            raise ValueError(f"query parameter ${name} must be timezone-aware, got {value!r}")
        text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")
        return f"CAST('{text}' AS TIMESTAMPTZ)"

    return PARAMETER.sub(literal, sql)


def to_spark_sql(duckdb_sql: str, params: dict[str, datetime]) -> str:
    """``duckdb_sql`` with its parameters bound, in Spark's dialect."""
    import sqlglot

    statements = sqlglot.transpile(
        bind_parameters(duckdb_sql, params),
        read="duckdb",
        write="spark",
        unsupported_level=sqlglot.ErrorLevel.RAISE,
    )
    if len(statements) != 1:
        raise ValueError(f"a feature query must be one statement, got {len(statements)}")
    return statements[0]
