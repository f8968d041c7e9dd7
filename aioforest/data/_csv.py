"""CSV reader: ``read_csv`` infers column kinds from every row and reports bad input precisely."""

from __future__ import annotations

import csv
import math
from collections.abc import Collection, Iterable, Sequence
from typing import IO, Any, get_args

import numpy as np

from ._dataset import (
    ColumnRef,
    Dataset,
    Feature,
    FloatArray,
    Task,
    _categorical_from_texts,
    _freeze,
)
from ._errors import DataError
from ._source import PathOrFile, open_text

__all__ = ["read_csv"]

_NAN = math.nan


def read_csv(
    path_or_file: PathOrFile,
    *,
    header: bool = True,
    target: ColumnRef | None = -1,
    categorical: Iterable[ColumnRef] | ColumnRef | None = None,
    na_values: Collection[str] = ("", "NA", "?"),
    delimiter: str = ",",
    task: Task = "classification",
) -> Dataset:
    """Read a delimited text file into a :class:`Dataset`.

    Parameters
    ----------
    path_or_file:
        A path, or an open text or binary file (read as UTF-8; a byte-order mark is skipped).
    header:
        Whether the first non-blank line holds the column names (surrounding whitespace is
        stripped from names). Without a header, features are named ``x0 .. x{d-1}`` in file
        order (skipping the target) and the target is named ``y``.
    target:
        The label column: a 0-based index (negative counts from the end; default: the last
        column) or, with a header, a name. ``None`` reads an unlabelled file (``y`` is None).
    categorical:
        Columns (names or indices) to read as categorical even if every value is a number.
    na_values:
        Cell texts (compared after stripping surrounding whitespace) that mean "missing".
    delimiter:
        The one-character field separator. Fields may be quoted with ``"`` (csv module rules).
    task:
        ``"classification"``: labels are kept as the original strings (an object array) and at
        least two distinct labels are required. ``"regression"``: labels are parsed as float64.

    Column kinds are inferred from **all** rows: a column is numeric iff every non-missing cell
    parses as a float (Python ``float`` syntax); otherwise it is categorical, its cells are kept
    verbatim (not stripped) and its categories are sorted. Missing cells become NaN in numeric
    columns and ``None`` in categorical ones. Blank lines are skipped wherever they occur.

    Raises
    ------
    DataError
        With the file, 1-based physical line and 1-based column, for: malformed quoting, rows
        with the wrong number of fields, a file without data rows, an unknown target or
        ``categorical`` column, a missing or (regression) non-numeric label, and a
        classification target with a single class.
    """
    _check_options(task, na_values, delimiter)
    na = frozenset(v.strip() for v in na_values)
    with open_text(path_or_file) as (f, path, source):
        rows, starts = _read_records(f, path, delimiter)
    names, rows, starts, t, ref_line = _layout(rows, starts, header, target, path)
    d = len(names)
    forced: set[int] = set()
    if categorical is not None:
        refs = [categorical] if isinstance(categorical, str | int) else list(categorical)
        for ref in refs:
            forced.add(_column_index(ref, names, d, "categorical", path, ref_line))
    if t is not None and t in forced and task == "regression":
        raise DataError("the target column cannot be categorical for a regression task",
                        path=path, column=t + 1, column_name=names[t])

    _check_field_counts(rows, starts, d, names, path)
    feature_columns = [j for j in range(d) if j != t]
    if not feature_columns:
        raise DataError("no feature columns (the file has only the target column)", path=path)
    columns = list(zip(*rows, strict=True))
    del rows
    encoded, features = _encode_features(columns, feature_columns, names, forced, na)
    y = None
    target_name = "target"
    if t is not None:
        target_name = names[t]
        y = _target_column(columns[t], na, task, path, starts, t, target_name)
    return Dataset._from_parts(encoded, y, tuple(features), target_name=target_name,
                               source=source, task=task)


def _check_options(task: object, na_values: Collection[str], delimiter: object) -> None:
    if task not in get_args(Task):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    if isinstance(na_values, str) or not all(isinstance(v, str) for v in na_values):
        raise TypeError("na_values must be a collection of str, e.g. ('', 'NA')")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(f"delimiter must be a single character, got {delimiter!r}")


def _layout(
    rows: list[list[str]], starts: list[int], header: bool, target: ColumnRef | None,
    path: str,
) -> tuple[list[str], list[list[str]], list[int], int | None, int]:
    """(column names, data rows, their lines, the target's index, the line to point at for
    a column named in the arguments: the header, else the first row)."""
    if not rows:
        raise DataError("no data rows (the file is empty)", path=path)
    header_names: list[str] | None = None
    ref_line = starts[0]
    if header:
        header_names = _header_names(rows[0], path, starts[0])
        rows, starts = rows[1:], starts[1:]
        if not rows:
            raise DataError("no data rows (only a header)", path=path)
    d = len(header_names) if header_names is not None else len(rows[0])
    t: int | None = None
    if target is not None:
        if not header and isinstance(target, str):
            raise DataError(f"target {target!r} is given by name but the file has no header "
                            f"(header=False); give a column index", path=path)
        t = _column_index(target, header_names, d, "target", path, ref_line)
    if header_names is not None:
        return header_names, rows, starts, t, ref_line
    names = []
    k = 0
    for j in range(d):
        if j == t:
            names.append("y")
        else:
            names.append(f"x{k}")
            k += 1
    return names, rows, starts, t, ref_line


def _encode_features(
    columns: list[tuple[str, ...]], feature_columns: list[int], names: list[str],
    forced: set[int], na: frozenset[str],
) -> tuple[FloatArray, list[Feature]]:
    """The float64 matrix (categories as codes, NaN for missing) and each feature's kind."""
    n = len(columns[0]) if columns else 0
    encoded = np.empty((n, len(feature_columns)), dtype=np.float64)
    features: list[Feature] = []
    for k, j in enumerate(feature_columns):
        values = None if j in forced else _numeric_column(columns[j], na)
        if values is None:
            texts = [None if c.strip() in na else c for c in columns[j]]
            feature, values = _categorical_from_texts(texts, names[j])
        else:
            feature = Feature(names[j], "numeric")
        features.append(feature)
        encoded[:, k] = values
    return encoded, features


def _read_records(f: IO[str], path: str, delimiter: str) -> tuple[list[list[str]], list[int]]:
    """Non-blank records and the physical line each starts on."""
    reader = csv.reader(f, delimiter=delimiter, strict=True)
    rows: list[list[str]] = []
    starts: list[int] = []
    prev = 0  # lines consumed before the current record
    try:
        for row in reader:
            # A blank (or whitespace-only) line is skipped, wherever it is.
            if len(row) > 1 or (row and row[0].strip()):
                rows.append(row)
                starts.append(prev + 1)
            prev = reader.line_num
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", path=path, line=prev + 1) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"not valid UTF-8 text ({exc.reason})", path=path) from None
    return rows, starts


def _header_names(row: list[str], path: str, line: int) -> list[str]:
    names = [c.strip() for c in row]
    seen: dict[str, int] = {}
    for j, name in enumerate(names):
        if not name:
            raise DataError("empty column name in the header", path=path, line=line,
                            column=j + 1)
        if name in seen:
            raise DataError(f"duplicate column name {name!r} (also column {seen[name] + 1})",
                            path=path, line=line, column=j + 1, column_name=name)
        seen[name] = j
    return names


def _column_index(
    ref: ColumnRef, names: Sequence[str] | None, d: int, what: str, path: str, line: int | None
) -> int:
    if isinstance(ref, bool) or not isinstance(ref, str | int | np.integer):
        raise TypeError(f"{what} column must be a name (str) or an index (int), got {ref!r}")
    if isinstance(ref, str):
        if names is None or ref not in names:
            shown = ", ".join(map(repr, names or []))
            raise DataError(f"{what} column {ref!r} not found; columns are {shown}",
                            path=path, line=line)
        return list(names).index(ref)
    index = int(ref)
    if not -d <= index < d:
        raise DataError(f"{what} column index {index} is out of range for {d} columns",
                        path=path, line=line)
    return index % d


def _check_field_counts(
    rows: list[list[str]], starts: list[int], d: int, names: list[str], path: str
) -> None:
    lengths = np.fromiter(map(len, rows), dtype=np.intp, count=len(rows))
    bad = np.flatnonzero(lengths != d)
    if bad.size == 0:
        return
    i = int(bad[0])
    found = int(lengths[i])
    # Point at the first field that is missing, or the first one too many.
    column = found + 1 if found < d else d + 1
    name = names[found] if found < d else None
    raise DataError(f"expected {d} fields, found {found}", path=path, line=starts[i],
                    column=column, column_name=name)


def _numeric_column(cells: tuple[str, ...], na: frozenset[str]) -> FloatArray | None:
    """The column as float64 (NaN where missing), or None if some cell is not a number."""
    n = len(cells)
    if not any(_is_float(v) for v in na):
        # Fast path: float() runs in C over the whole column; it rejects every na token, so
        # success means there is nothing missing.
        try:
            return np.fromiter(map(float, cells), dtype=np.float64, count=n)
        except ValueError:
            pass
    out = np.empty(n, dtype=np.float64)
    for i, cell in enumerate(cells):
        if cell.strip() in na:
            out[i] = _NAN
            continue
        try:
            out[i] = float(cell)
        except ValueError:
            return None
    return out


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _target_column(
    cells: tuple[str, ...],
    na: frozenset[str],
    task: Task,
    path: str,
    starts: list[int],
    t: int,
    name: str,
    *,
    one_class_ok: bool = False,
) -> np.ndarray[Any, Any]:
    """The target column, checked (``one_class_ok``: a file that is one part of a dataset
    may hold a single class)."""

    def fail(i: int, reason: str) -> DataError:
        return DataError(reason, path=path, line=starts[i], column=t + 1, column_name=name)

    for i, cell in enumerate(cells):
        if cell.strip() in na:
            raise fail(i, f"missing target value {cell!r}")
    if task == "regression":
        out = np.empty(len(cells), dtype=np.float64)
        for i, cell in enumerate(cells):
            try:
                value = float(cell)
            except ValueError:
                raise fail(i, f"target value {cell!r} is not a number") from None
            if math.isnan(value):
                raise fail(i, f"missing target value {cell!r}")
            out[i] = value
        return _freeze(out)
    distinct = set(cells)
    if len(distinct) < 2 and not one_class_ok:
        raise DataError(f"the target has a single class {cells[0]!r}; classification needs at "
                        f"least two", path=path, column=t + 1, column_name=name)
    labels = np.empty(len(cells), dtype=object)
    labels[:] = cells
    return _freeze(labels)
