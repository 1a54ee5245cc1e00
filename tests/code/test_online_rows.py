"""feature_repo.online_rows: the same rows as Feast's own Arrow-to-proto conversion."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from feast import Entity, FeatureView, Field, FileSource
from feast.types import Array, Bool, Float32, Float64, Int32, Int64, String
from feast.utils import _convert_arrow_to_proto

from feature_repo.online_rows import online_rows

ROWS = 500
SCALARS = {
    "f64": Float64,
    "f32": Float32,
    "i64": Int64,
    "i32": Int32,
    "text": String,
    "flag": Bool,
}


def view(extra: dict[str, Any] | None = None, created: bool = True) -> FeatureView:
    source = FileSource(
        name="src",
        path="unused.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_column="created" if created else "",
    )
    return FeatureView(
        name="everything",
        entities=[
            Entity(name="tail", join_keys=["tail"], value_type=String.to_value_type()),
            Entity(name="leg", join_keys=["leg"], value_type=Int64.to_value_type()),
        ],
        schema=[
            Field(name="tail", dtype=String),
            Field(name="leg", dtype=Int64),
            *[Field(name=name, dtype=kind) for name, kind in {**SCALARS, **(extra or {})}.items()],
        ],
        source=source,
        ttl=timedelta(days=1),
    )


def batch(seed: int, tz: str | None = "UTC", unit: str = "us") -> pa.RecordBatch:
    """Every supported type, with nulls, NaN, infinities, extremes and unicode."""
    rng = np.random.default_rng(seed)
    null = rng.random(ROWS) < 0.15

    def with_nulls(values: list[Any]) -> list[Any]:
        return [None if n else v for v, n in zip(values, null[rng.permutation(ROWS)], strict=True)]

    floats = rng.normal(0, 1e6, ROWS)
    floats[:4] = [math.nan, math.inf, -math.inf, -0.0]
    start = datetime(2013, 1, 1, tzinfo=UTC if tz else None)
    events = [
        start + timedelta(seconds=int(s), microseconds=int(u))
        for s, u in zip(
            rng.integers(0, 365 * 86400, ROWS), rng.integers(0, 1_000_000, ROWS), strict=True
        )
    ]
    return pa.RecordBatch.from_pydict(
        {
            "tail": pa.array([f"N{i}é" for i in range(ROWS)]),
            "leg": pa.array(rng.integers(-(2**62), 2**62, ROWS), pa.int64()),
            "f64": pa.array(with_nulls(list(floats)), pa.float64()),
            "f32": pa.array(with_nulls(list(floats)), pa.float32()),
            # No nulls here: Feast reads an int column with nulls as float64 (see below).
            "i64": pa.array(rng.integers(-(2**62), 2**62, ROWS), pa.int64()),
            "i32": pa.array(with_nulls(list(rng.integers(-(2**31), 2**31 - 1, ROWS))), pa.int32()),
            "text": pa.array(with_nulls([f"t{v}✈" for v in range(ROWS)]), pa.string()),
            "flag": pa.array(with_nulls(list(rng.random(ROWS) < 0.5)), pa.bool_()),
            "event_timestamp": pa.array(events, pa.timestamp(unit, tz=tz)),
            "created": pa.array(
                [e + timedelta(minutes=5) for e in events], pa.timestamp(unit, tz=tz)
            ),
        }
    )


def serialized(rows: list[Any]) -> list[tuple[bytes, dict[str, bytes], Any, Any]]:
    return [
        (
            key.SerializeToString(),
            {name: value.SerializeToString() for name, value in values.items()},
            event,
            created,
        )
        for key, values, event, created in rows
    ]


def join_keys(fv: FeatureView) -> dict[str, Any]:
    return {e.name: e.dtype.to_value_type() for e in fv.entity_columns}


@pytest.mark.parametrize(
    ("tz", "unit"),
    [("UTC", "us"), (None, "us"), ("UTC", "ms"), ("America/New_York", "s"), ("UTC", "ns")],
)
def test_rows_are_byte_identical_to_feasts(tz: str | None, unit: str) -> None:
    fv = view()
    for seed in range(3):
        data = batch(seed, tz, unit)
        ours = online_rows(data, fv, join_keys(fv))
        assert serialized(ours) == serialized(_convert_arrow_to_proto(data, fv, join_keys(fv)))
        assert all(event.tzinfo is None for _, _, event, _ in ours)  # naive UTC, as Feast's


def test_nan_and_null_both_become_an_empty_value() -> None:
    fv = view()
    rows = online_rows(batch(0), fv, join_keys(fv))
    assert rows[0][1]["f64"].WhichOneof("val") is None  # NaN
    assert rows[1][1]["f64"].double_val == math.inf
    nulls = [
        values["text"] for _, values, _, _ in rows if not values["text"].HasField("string_val")
    ]
    assert nulls and all(v.SerializeToString() == b"" for v in nulls)


def test_a_view_without_created_timestamps_gets_none() -> None:
    fv = view(created=False)
    data = batch(1)
    ours = online_rows(data, fv, join_keys(fv))
    assert {created for *_, created in ours} == {None}
    assert serialized(ours) == serialized(_convert_arrow_to_proto(data, fv, join_keys(fv)))


def test_other_types_go_through_feasts_converter() -> None:
    fv = view(extra={"legs": Array(Int64)})
    data = batch(2)
    lists = pa.array([[1, 2], None, [], [3]] * (ROWS // 4), pa.list_(pa.int64()))
    data = pa.RecordBatch.from_arrays([*data.columns, lists], names=[*data.schema.names, "legs"])
    ours = online_rows(data, fv, join_keys(fv))
    assert ours[0][1]["legs"].int64_list_val.val == [1, 2]
    assert serialized(ours) == serialized(_convert_arrow_to_proto(data, fv, join_keys(fv)))


def test_a_column_of_the_wrong_arrow_type_is_left_to_feast() -> None:
    fv = view()
    data = batch(3)
    as_text = pa.array([str(v) for v in data.column("i32").to_pylist()], pa.string())
    data = data.set_column(data.schema.get_field_index("i32"), "i32", as_text)
    with pytest.raises((AssertionError, TypeError, ValueError)):
        online_rows(data, fv, join_keys(fv))  # Feast's converter refuses it, as it should


def test_integers_with_nulls_stay_exact_where_feast_rounds_through_float() -> None:
    fv = view()
    data = batch(4)
    big = pa.array([2**62 + 1, None] * (ROWS // 2), pa.int64())
    data = data.set_column(data.schema.get_field_index("i64"), "i64", big)
    ours = online_rows(data, fv, join_keys(fv))
    feasts = _convert_arrow_to_proto(data, fv, join_keys(fv))
    assert ours[0][1]["i64"].int64_val == 2**62 + 1
    assert feasts[0][1]["i64"].int64_val == 2**62  # float64 cannot hold 2**62 + 1
    assert ours[1][1]["i64"].SerializeToString() == feasts[1][1]["i64"].SerializeToString() == b""
