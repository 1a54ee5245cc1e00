"""Data contracts for raw batches: schema, types, non-null keys, plausible ranges.

A contract is checked before anything is published. The first violation
raises :class:`BatchRejected`, which names the file, the column and the
problem, so an operator can find the bad record without reading a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd
from pandas.api import types as ptypes

ColumnKind = Literal["string", "int", "float", "number", "timestamp", "bool"]


class BatchRejected(ValueError):
    """A raw batch failed its contract; nothing from it was published."""

    def __init__(self, file: str, column: str | None, problem: str) -> None:
        self.file = file
        self.column = column
        self.problem = problem
        where = f"column {column!r}: " if column else ""
        super().__init__(f"rejected batch {file}: {where}{problem}")


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind
    nullable: bool = True
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class TableContract:
    name: str
    columns: tuple[Column, ...]
    unique_key: tuple[str, ...] = ()
    allow_extra_columns: bool = False
    min_rows: int = 0
    column_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "column_names", tuple(c.name for c in self.columns))


_KIND_CHECKS = {
    "string": lambda s: ptypes.is_string_dtype(s) or ptypes.is_object_dtype(s),
    "int": ptypes.is_integer_dtype,
    "float": ptypes.is_float_dtype,
    "number": lambda s: ptypes.is_numeric_dtype(s) and not ptypes.is_bool_dtype(s),
    "timestamp": ptypes.is_datetime64_any_dtype,
    "bool": ptypes.is_bool_dtype,
}


def _examples(values: Iterable[object], limit: int = 3) -> str:
    shown = [repr(v) for v in list(values)[:limit]]
    return ", ".join(shown)


def validate_frame(frame: pd.DataFrame, contract: TableContract, file: str) -> None:
    """Raise :class:`BatchRejected` on the first contract violation."""
    missing = [name for name in contract.column_names if name not in frame.columns]
    if missing:
        raise BatchRejected(file, missing[0], f"missing column (expected {contract.name} schema)")
    if not contract.allow_extra_columns:
        extra = [name for name in frame.columns if name not in contract.column_names]
        if extra:
            raise BatchRejected(file, extra[0], "unexpected column")
    if len(frame) < contract.min_rows:
        raise BatchRejected(file, None, f"{len(frame)} rows, expected at least {contract.min_rows}")

    for column in contract.columns:
        series = frame[column.name]
        if not _KIND_CHECKS[column.kind](series):
            problem = f"expected {column.kind} values, got dtype {series.dtype}"
            if ptypes.is_object_dtype(series) and column.kind in ("int", "float", "number"):
                bad = series[pd.to_numeric(series, errors="coerce").isna() & series.notna()]
                problem += f" (non-numeric values such as {_examples(bad.unique())})"
            raise BatchRejected(file, column.name, problem)
        nulls = int(series.isna().sum())
        if nulls and not column.nullable:
            raise BatchRejected(file, column.name, f"{nulls} null values in a non-null column")
        if column.min is not None or column.max is not None:
            low = column.min if column.min is not None else float("-inf")
            high = column.max if column.max is not None else float("inf")
            out = series[(series < low) | (series > high)]
            if len(out):
                raise BatchRejected(
                    file,
                    column.name,
                    f"{len(out)} values outside [{low}, {high}] (e.g. {_examples(out.unique())})",
                )

    if contract.unique_key:
        dupes = frame.duplicated(list(contract.unique_key), keep=False)
        if dupes.any():
            sample = frame.loc[dupes, list(contract.unique_key)].head(2).to_dict("records")
            raise BatchRejected(
                file,
                ",".join(contract.unique_key),
                f"{int(dupes.sum())} rows share a key (e.g. {sample})",
            )
