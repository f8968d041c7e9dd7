"""Parquet partitions, through pyarrow (the optional ``aioforest[parquet]`` extra).

A Parquet file is read into the same pieces a CSV file gives (``_partitions`` makes them
its ``PartitionTable``), so scans merge into one schema the same way:

* integer, float, decimal and boolean columns are numeric (nulls are missing values);
* string and dictionary columns are text: their distinct values are categories, and the
  ``na_values`` mark missing cells as in CSV;
* a numeric column that another file holds as text becomes text here too, each number
  written as Python writes it (``3``, ``2.5``), as a CSV file would spell it.

Nothing imports pyarrow until a Parquet file is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._csv import _column_index
from ._dataset import ColumnRef, Task
from ._errors import DataError

__all__ = ["PARQUET_SUFFIXES", "ParquetColumns", "is_parquet", "read_parquet_columns"]

PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
_NAN = np.float64(np.nan)


def is_parquet(path: str) -> bool:
    return path.lower().endswith(PARQUET_SUFFIXES)


def _pyarrow() -> Any:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            "reading Parquet needs pyarrow: pip install 'aioforest[parquet]'") from None
    return pq


@dataclass(frozen=True)
class ParquetColumns:
    """One Parquet file, read: what a ``PartitionTable`` is made of."""

    n_rows: int
    names: tuple[str, ...]
    target: int | None
    numeric: tuple[bool, ...]
    texts: tuple[tuple[str, ...], ...]
    values: list[np.ndarray[Any, Any]]
    y: np.ndarray[Any, Any] | None
    labels: tuple[str, ...]
    texts_of: dict[int, tuple[str, ...]]


def read_parquet_columns(
    path: str, target_ref: ColumnRef | None, categorical: Sequence[ColumnRef],
    na_values: Sequence[str], task: Task, as_text: Sequence[int] = (),
) -> ParquetColumns:
    """Read one Parquet file of a partitioned dataset (see the module docstring);
    ``DataError`` names the file, the row and the column."""
    pq = _pyarrow()
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise DataError("no such file", path=path) from None
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"cannot read the Parquet file: {exc}", path=path) from None
    names = [str(n) for n in table.column_names]
    d = len(names)
    target = (None if target_ref is None
              else _column_index(target_ref, names, d, "target", path, None))
    forced = {_column_index(c, names, d, "categorical", path, None) for c in categorical}
    na = frozenset(v.strip() for v in na_values)
    numeric: list[bool] = []
    texts: list[tuple[str, ...]] = []
    values: list[np.ndarray[Any, Any]] = []
    texts_of: dict[int, tuple[str, ...]] = {}
    for k, j in enumerate(c for c in range(d) if c != target):
        column = table.column(j)
        number = None if j in forced else _numbers(column)
        if number is not None and k not in as_text:
            numeric.append(True)
            texts.append(())
            values.append(number)
            continue
        cats, codes = _text_codes(_cells(column), na)
        numeric.append(number is not None)
        texts.append(() if number is not None else cats)
        if number is not None:  # numeric here, but text for the merged schema
            texts_of[k] = cats
        values.append(codes)
    y, labels = (None, ()) if target is None else _target(table.column(target), names[target],
                                                        task, na, path)
    return ParquetColumns(int(table.num_rows), tuple(names), target, tuple(numeric),
                          tuple(texts), values, y, labels, texts_of)


def _numbers(column: Any) -> np.ndarray[Any, Any] | None:
    """A numeric column as float64 (nulls as NaN); None for any other type."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_dictionary(kind):
        return None
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)
            or pa.types.is_boolean(kind) or pa.types.is_decimal(kind)):
        return None
    # unsafe: integers beyond 2**53 round to the nearest float, as a CSV reader's do
    out = np.asarray(column.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False),
                     dtype=np.float64)
    return np.ascontiguousarray(out)


def _cells(column: Any) -> list[str | None]:
    """Every cell as text (None for a null), numbers spelled as Python spells them."""
    out: list[str | None] = []
    for value in column.to_pylist():
        if value is None:
            out.append(None)
        elif isinstance(value, float) and value.is_integer():
            out.append(str(int(value)))
        else:
            out.append(str(value))
    return out


def _text_codes(cells: list[str | None], na: frozenset[str]
                ) -> tuple[tuple[str, ...], np.ndarray[Any, Any]]:
    present = [c for c in cells if c is not None and c.strip() not in na]
    cats = tuple(sorted(set(present)))
    position = {c: float(i) for i, c in enumerate(cats)}
    codes = np.fromiter(
        (_NAN if c is None or c.strip() in na else position[c] for c in cells),
        dtype=np.float64, count=len(cells))
    return cats, codes


def _target(column: Any, name: str, task: Task, na: frozenset[str], path: str
            ) -> tuple[np.ndarray[Any, Any], tuple[str, ...]]:
    cells = _cells(column)
    for row, cell in enumerate(cells):
        if cell is None or cell.strip() in na:
            raise DataError(f"row {row}: the target is missing", path=path, column_name=name)
    if task == "regression":
        number = _numbers(column)
        if number is None:
            raise DataError(f"a regression target must be numeric, the column is "
                            f"{column.type}", path=path, column_name=name)
        bad = np.flatnonzero(~np.isfinite(number))
        if bad.size:
            raise DataError(f"row {int(bad[0])}: the target {number[bad[0]]} is not finite",
                            path=path, column_name=name)
        return number, ()
    labels = [c for c in cells if c is not None]  # every cell, checked above
    y = np.empty(len(labels), dtype=object)
    y[:] = labels
    return y, tuple(sorted(set(labels)))


def arrow_numeric_csv(path: str, delimiter: str, names: Sequence[str],
                      feature_cols: Sequence[int], target: int | None
                      ) -> tuple[np.ndarray[Any, Any], list[str] | None] | None:
    """pyarrow's multi-threaded CSV parser for a file whose feature cells are all plain
    numbers: (features as float64 rows x columns, target texts); None when pyarrow is not
    installed or any cell is not a plain number (the careful reader then says which).

    Arrow parses a decimal to the nearest float64, as Python's ``float`` does, so the
    values equal the careful reader's. The caller refuses files with C's ``nan(...)``
    spellings first (Arrow reads them as NaN, Python's ``float`` refuses them).
    """
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    types = {names[j]: pa.float64() for j in feature_cols}
    if target is not None:
        types[names[target]] = pa.string()
    try:
        table = pacsv.read_csv(
            path,
            # our names (the header was read already, BOM and all), the header row skipped
            read_options=pacsv.ReadOptions(use_threads=True, column_names=list(names),
                                           skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types=types, null_values=[], strings_can_be_null=False,
                quoted_strings_can_be_null=False, check_utf8=True),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError):
        return None
    if table.num_columns != len(names) or table.num_rows == 0:
        return None
    values = np.empty((table.num_rows, len(feature_cols)), dtype=np.float64)
    for k, j in enumerate(feature_cols):
        column = table.column(j)
        if column.null_count:
            return None
        values[:, k] = column.to_numpy()
    labels = table.column(target).to_pylist() if target is not None else None
    return values, labels
