"""Partitioned datasets: a list of CSV files read where they are, one schema for all.

A :class:`Partitions` names the files (a glob is expanded and sorted) and how to read them.
Whoever holds a file reads it (:func:`read_partition`) and reports a
:class:`PartitionScan`: its row count, header and, per column, whether every cell is a
number and which texts it holds. :func:`merge_scans` turns the scans into one
:class:`Schema`, exactly what :func:`~aioforest.data.read_csv` infers from the
concatenation of the files (header once):

* a column is numeric only if it is numeric in every file; otherwise it is categorical,
  with the sorted union of every file's texts as categories;
* the classes are the sorted union of the files' labels.

:meth:`PartitionTable.encode` then gives a file's rows in that schema. The dataset's rows
are the files in order, then each file's rows in order: a row's position there is its
*global row id*, which keys its bootstrap draw and its place in the binning sample.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

import numpy as np
import numpy.typing as npt

from ._csv import (
    _check_field_counts,
    _check_options,
    _column_index,
    _header_names,
    _numeric_column,
    _read_records,
    _target_column,
)
from ._dataset import ColumnRef, Dataset, Feature, FloatArray, Task, _freeze
from ._errors import DataError
from ._parquet import arrow_numeric_csv, is_parquet, read_parquet_columns
from ._source import open_text

__all__ = [
    "CsvOptions",
    "PartitionScan",
    "PartitionTable",
    "Partitions",
    "Schema",
    "columns_to_reread",
    "encode_partition",
    "merge_scans",
    "read_partition",
]

_NAN = float("nan")


@dataclass(frozen=True)
class Partitions:
    """A dataset cut into CSV or Parquet files, each read by whoever holds it (see the
    module doc). Files ending in ``.parquet`` (or ``.parq``, ``.pq``) are read through
    pyarrow (``pip install 'aioforest[parquet]'``), the others as CSV.

    ``paths``: a list of files, or one glob pattern (``'data/part-*.csv'``; its matches are
    sorted). The other arguments are :func:`~aioforest.data.read_csv`'s; every file must
    have a header, the same one.

    ``root`` is the directory the files are named relative to on the wire: a worker whose
    mount point differs passes its own (``--data-root``).
    """

    paths: tuple[str, ...]
    target: ColumnRef | None = -1
    categorical: tuple[ColumnRef, ...] = ()
    na_values: tuple[str, ...] = ("", "NA", "?")
    delimiter: str = ","
    task: Task = "classification"
    root: str = field(default="")

    def __init__(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        target: ColumnRef | None = -1,
        categorical: Iterable[ColumnRef] | ColumnRef | None = None,
        na_values: Iterable[str] = ("", "NA", "?"),
        delimiter: str = ",",
        task: Task = "classification",
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        files = _expand(paths)
        cats: tuple[ColumnRef, ...] = (
            () if categorical is None
            else (categorical,) if isinstance(categorical, str | int)
            else tuple(categorical)
        )
        na = tuple(na_values)
        _check_options(task, na, delimiter)
        base = os.fspath(root) if root is not None else _common_dir(files)
        for name, value in (("paths", files), ("target", target), ("categorical", cats),
                            ("na_values", na), ("delimiter", delimiter), ("task", task),
                            ("root", base)):
            object.__setattr__(self, name, value)

    def relative_paths(self) -> list[str]:
        """Each file relative to :attr:`root` (what goes on the wire)."""
        return [os.path.relpath(p, self.root) for p in self.paths]

    def options(self) -> CsvOptions:
        return CsvOptions(self.target, self.categorical, self.na_values, self.delimiter,
                          self.task)

    def read(self) -> Dataset:
        """Every file in this process, as one :class:`Dataset` (the concatenation)."""
        options = self.options()
        tables = [read_partition(p, options) for p in self.paths]
        scans = [t.scan for t in tables]
        extra: dict[int, dict[int, tuple[str, ...]]] = {}
        for p, columns in columns_to_reread(scans).items():
            tables[p] = read_partition(self.paths[p], options, as_text=columns)
            extra[p] = {k: tables[p].texts_of[k] for k in columns}
        schema = merge_scans(scans, options, extra)
        parts = [encode_partition(t, schema, options) for t in tables]
        encoded = np.concatenate([x for x, _ in parts]) if parts else np.zeros((0, 0))
        y: np.ndarray[Any, Any] | None = None
        if schema.has_target:
            codes = np.concatenate([c for _, c in parts])
            if schema.task == "regression":
                y = _freeze(codes.astype(np.float64))
            else:
                labels = np.empty(codes.size, dtype=object)
                labels[:] = [schema.classes[int(c)] for c in codes]
                y = _freeze(labels)
        return Dataset._from_parts(
            np.ascontiguousarray(encoded, dtype=np.float64), y, schema.features,
            target_name=schema.target_name, source=self.paths[0] if self.paths else None,
            task=schema.task,
        )


def _expand(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> tuple[str, ...]:
    if isinstance(paths, str | os.PathLike):
        text = os.fspath(paths)
        if glob.has_magic(text):
            found = tuple(sorted(glob.glob(text)))
            if not found:
                raise DataError(f"no file matches the pattern {text!r}", path=text)
            return found
        return (text,)
    files = tuple(os.fspath(p) for p in paths)
    if not files:
        raise ValueError("Partitions needs at least one file")
    return files


def _common_dir(files: Sequence[str]) -> str:
    dirs = [os.path.dirname(os.path.abspath(p)) for p in files]
    return os.path.commonpath(dirs) if dirs else os.getcwd()


@dataclass(frozen=True)
class CsvOptions:
    """How every file of a partitioned dataset is read (JSON on the wire)."""

    target: ColumnRef | None
    categorical: tuple[ColumnRef, ...]
    na_values: tuple[str, ...]
    delimiter: str
    task: Task

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "categorical": list(self.categorical),
                "na_values": list(self.na_values), "delimiter": self.delimiter,
                "task": self.task}

    @classmethod
    def from_json(cls, data: object) -> CsvOptions:
        """The options :meth:`to_json` wrote; ``ValueError`` names a bad field."""
        if not isinstance(data, dict) or set(data) != {"target", "categorical", "na_values",
                                                       "delimiter", "task"}:
            raise ValueError(f"csv options: expected target, categorical, na_values, "
                             f"delimiter and task, got {data!r:.100}")
        target = data["target"]
        if not (target is None or _is_ref(target)):
            raise ValueError(f"csv options.target: a column name or index, got {target!r:.60}")
        cats, na = data["categorical"], data["na_values"]
        if not isinstance(cats, list) or not all(_is_ref(c) for c in cats):
            raise ValueError("csv options.categorical: a list of column names or indices")
        if not isinstance(na, list) or not all(isinstance(v, str) for v in na):
            raise ValueError("csv options.na_values: a list of strings")
        delimiter, task = data["delimiter"], data["task"]
        if task not in get_args(Task):
            raise ValueError(f"csv options.task: classification or regression, got {task!r:.40}")
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            raise ValueError(f"csv options.delimiter: one character, got {delimiter!r:.20}")
        return cls(target, tuple(cats), tuple(na), delimiter, task)


def _is_ref(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


@dataclass(frozen=True)
class PartitionScan:
    """What one file says about the schema (see :func:`merge_scans`); JSON on the wire.

    ``numeric[j]`` and ``texts[j]`` are per feature column (the target left out):
    ``texts[j]`` holds the column's sorted distinct texts when it is not numeric here.
    ``labels``: the sorted distinct target labels (classification), else empty.
    """

    path: str
    n_rows: int
    names: tuple[str, ...]
    target: int | None
    numeric: tuple[bool, ...]
    texts: tuple[tuple[str, ...], ...]
    labels: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "n_rows": self.n_rows, "names": list(self.names),
                "target": self.target, "numeric": list(self.numeric),
                "texts": [list(t) for t in self.texts], "labels": list(self.labels)}

    @classmethod
    def from_json(cls, data: object) -> PartitionScan:
        """The scan :meth:`to_json` wrote; ``ValueError`` names a bad field."""
        keys = {"path", "n_rows", "names", "target", "numeric", "texts", "labels"}
        if not isinstance(data, dict) or set(data) != keys:
            raise ValueError(f"partition scan: expected keys {sorted(keys)}")
        path, n_rows, names = data["path"], data["n_rows"], data["names"]
        target, numeric, texts, labels = (data["target"], data["numeric"], data["texts"],
                                          data["labels"])
        ok = (
            isinstance(path, str) and isinstance(n_rows, int) and n_rows >= 0
            and _str_list(names) and (target is None or (isinstance(target, int)
                                                         and 0 <= target < len(names)))
            and isinstance(numeric, list) and all(isinstance(v, bool) for v in numeric)
            and isinstance(texts, list) and all(_str_list(t) for t in texts)
            and len(texts) == len(numeric) == len(names) - (target is not None)
            and _str_list(labels)
        )
        if not ok:
            raise ValueError(f"partition scan of {path!r:.200}: malformed fields")
        return cls(path, n_rows, tuple(names), target, tuple(numeric),
                   tuple(tuple(t) for t in texts), tuple(labels))


def _str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


@dataclass(frozen=True)
class Schema:
    """The merged schema of a partitioned dataset (JSON on the wire)."""

    features: tuple[Feature, ...]
    classes: tuple[str, ...]
    target_name: str
    task: Task
    has_target: bool
    feature_columns: tuple[int, ...]  # each feature's column in the files
    target_column: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "features": [{"name": f.name, "kind": f.kind, "categories": list(f.categories)}
                         for f in self.features],
            "classes": list(self.classes), "target_name": self.target_name,
            "task": self.task, "feature_columns": list(self.feature_columns),
            "target_column": self.target_column,
        }

    @classmethod
    def from_json(cls, data: object) -> Schema:
        """The schema :meth:`to_json` wrote; ``ValueError`` names a bad field."""
        keys = {"features", "classes", "target_name", "task", "feature_columns",
                "target_column"}
        if not isinstance(data, dict) or set(data) != keys:
            raise ValueError(f"schema: expected keys {sorted(keys)}")
        try:
            features = tuple(
                Feature(f["name"], f["kind"], tuple(f["categories"])) for f in data["features"]
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"schema.features: malformed ({exc!r})") from None
        cols, tcol = data["feature_columns"], data["target_column"]
        if not (isinstance(cols, list) and all(isinstance(c, int) and c >= 0 for c in cols)
                and len(cols) == len(features)):
            raise ValueError("schema.feature_columns: one column index per feature")
        if not (tcol is None or (isinstance(tcol, int) and tcol >= 0)):
            raise ValueError("schema.target_column: null or a column index")
        if data["task"] not in get_args(Task) or not _str_list(data["classes"]):
            raise ValueError("schema: bad task or classes")
        if not isinstance(data["target_name"], str):
            raise ValueError("schema.target_name: a string")
        return cls(features, tuple(data["classes"]), data["target_name"], data["task"],
                   tcol is not None, tuple(cols), tcol)


@dataclass
class PartitionTable:
    """One file, parsed: its scan, and its columns as read (numbers, or texts as codes
    into the file's own sorted texts)."""

    scan: PartitionScan
    columns: list[FloatArray]  # per feature: numbers, or codes into scan.texts[j]
    target: np.ndarray[Any, Any] | None  # labels (str objects) or float targets
    texts_of: dict[int, tuple[str, ...]]  # for numeric columns: their cells as texts,
    # filled on demand when the merged schema makes the column categorical

    def encode(self, schema: Schema) -> tuple[FloatArray, np.ndarray[Any, Any]]:
        """The file's rows in ``schema``: (encoded features, class codes or targets)."""
        n = self.scan.n_rows
        out = np.empty((n, len(schema.features)), dtype=np.float64)
        for j, feature in enumerate(schema.features):
            column = self.columns[j]
            if not feature.is_categorical:
                if not self.scan.numeric[j]:
                    raise DataError("the column holds text, but the merged schema says "
                                    "numeric (the file changed)", path=self.scan.path,
                                    column_name=feature.name)
                out[:, j] = column
                continue
            texts = self.scan.texts[j] if not self.scan.numeric[j] else self.texts_of[j]
            categories = np.array(feature.categories, dtype=object)
            found = np.searchsorted(categories, np.array(texts, dtype=object))
            unknown = [t for t, i in zip(texts, found.tolist(), strict=True)
                       if i >= len(categories) or categories[i] != t]
            if unknown:  # the file changed since the schema was merged
                raise DataError(f"value {unknown[0]!r} is not among the merged categories",
                                path=self.scan.path, column_name=feature.name)
            position = found.astype(np.float64)
            present = ~np.isnan(column)
            out[:, j] = _NAN
            out[present, j] = position[column[present].astype(np.int64)]
        if not schema.has_target or self.target is None:
            return out, np.zeros(n, dtype=np.int64)
        if schema.task == "regression":
            return out, np.asarray(self.target, dtype=np.float64)
        codes = np.searchsorted(np.array(schema.classes, dtype=object),
                                np.asarray(self.target, dtype=object)).astype(np.int64)
        return out, codes


def read_partition(path: str, options: CsvOptions, as_text: Sequence[int] = ()
                   ) -> PartitionTable:
    """Read one file of a partitioned dataset; ``DataError`` names file, line and column.

    ``as_text``: feature columns to keep as text even where every cell is a number (the
    merged schema made them categorical).
    """
    if is_parquet(path):
        got = read_parquet_columns(path, options.target, options.categorical,
                                   options.na_values, options.task, as_text)
        scan = PartitionScan(path, got.n_rows, got.names, got.target, got.numeric, got.texts,
                             got.labels)
        return PartitionTable(scan, got.values, got.y, got.texts_of)
    fast = None if as_text or options.categorical else _read_numeric_fast(path, options)
    if fast is not None:
        return fast
    try:
        with open_text(path) as (f, shown, _):
            rows, starts = _read_records(f, shown, options.delimiter)
    except FileNotFoundError:
        raise DataError("no such file", path=path) from None
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc.strerror or exc}", path=path) from None
    if not rows:
        raise DataError("no header (the file is empty)", path=path)
    names = _header_names(rows[0], path, starts[0])
    d = len(names)
    target = (None if options.target is None
              else _column_index(options.target, names, d, "target", path, starts[0]))
    forced = {_column_index(c, names, d, "categorical", path, starts[0])
              for c in options.categorical}
    data, lines = rows[1:], starts[1:]
    _check_field_counts(data, lines, d, names, path)
    columns: list[tuple[str, ...]] = (
        list(zip(*data, strict=True)) if data else [() for _ in range(d)]
    )
    del data
    na = frozenset(v.strip() for v in options.na_values)
    feature_cols = [j for j in range(d) if j != target]
    numeric: list[bool] = []
    texts: list[tuple[str, ...]] = []
    values: list[FloatArray] = []
    texts_of: dict[int, tuple[str, ...]] = {}
    for k, j in enumerate(feature_cols):
        cells = columns[j]
        number = None if j in forced else _numeric_column(cells, na)
        if number is not None and k not in as_text:
            numeric.append(True)
            texts.append(())
            values.append(number)
            continue
        cats, codes = _text_codes(cells, na)
        if number is not None:  # numeric here, but text for the merged schema
            numeric.append(True)
            texts.append(())
            texts_of[k] = cats
        else:
            numeric.append(False)
            texts.append(cats)
        values.append(codes)
    y, labels = _read_target(columns, target, lines, names, na, options.task, path)
    scan = PartitionScan(path, len(lines), tuple(names), target, tuple(numeric),
                         tuple(texts), labels)
    return PartitionTable(scan, values, y, texts_of)


def _read_numeric_fast(path: str, options: CsvOptions) -> PartitionTable | None:
    """numpy's C parser for a file whose feature cells are all numbers and complete; None
    (read it the careful way, with its precise errors) for anything else."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            header_line = f.readline()
            first_row = f.readline()
    except OSError:
        return None
    if not first_row.strip():
        return None  # no data right after the header: loadtxt would only warn
    try:
        with open(path, "rb") as fb:
            if _NOT_FOR_FAST_PARSERS.search(fb.read()):
                # blank lines: loadtxt warns about them, the careful path skips them; C's
                # "nan(...)": the C parsers read NaN where Python's float refuses
                return None
    except OSError:
        return None
    names = [c.strip() for c in header_line.rstrip("\r\n").split(options.delimiter)]
    if (not header_line.strip() or '"' in header_line or len(set(names)) != len(names)
            or not all(names)):
        return None
    d = len(names)
    try:
        target = (None if options.target is None
                  else _column_index(options.target, names, d, "target", path, 1))
    except DataError:
        return None
    feature_cols = [j for j in range(d) if j != target]
    na = {v.strip() for v in options.na_values}
    if any(_is_number_text(v) for v in na) or not feature_cols:
        return None  # a number that means "missing": only the careful path knows
    arrow = arrow_numeric_csv(path, options.delimiter, names, feature_cols, target)
    if arrow is not None:
        values, texts = arrow
        labels = None if texts is None else np.array(texts, dtype=object)  # NULs kept
        return _fast_table(path, names, target, values, labels, options.task, na)
    try:
        values = np.loadtxt(path, usecols=feature_cols, dtype=np.float64,
                            delimiter=options.delimiter, skiprows=1, comments=None,
                            quotechar='"', encoding="utf-8-sig", ndmin=2)
        labels = (np.loadtxt(path, usecols=[target], dtype=str, delimiter=options.delimiter,
                             skiprows=1, comments=None, quotechar='"',
                             encoding="utf-8-sig", ndmin=2)[:, 0]
                  if target is not None else None)
    except (ValueError, IndexError, OSError, Warning):  # a warning raised as an error
        return None
    if values.shape[0] == 0 or values.shape[1] != len(feature_cols):
        return None
    return _fast_table(path, names, target, values, labels, options.task, na)


def _fast_table(path: str, names: list[str], target: int | None, values: FloatArray,
                labels: np.ndarray[Any, Any] | None, task: Task, na: set[str]
                ) -> PartitionTable | None:
    y: np.ndarray[Any, Any] | None = None
    found: tuple[str, ...] = ()
    if labels is not None:
        if labels.size and any(t.strip() in na for t in np.unique(labels).tolist()):
            return None
        if task == "regression":
            return None  # the careful path checks every target value
        y = np.empty(labels.size, dtype=object)
        y[:] = labels.tolist()
        found = tuple(sorted(set(y.tolist())))
    columns = [np.ascontiguousarray(values[:, k]) for k in range(values.shape[1])]
    n_features = values.shape[1]
    scan = PartitionScan(path, values.shape[0], tuple(names), target,
                         (True,) * n_features, ((),) * n_features, found)
    return PartitionTable(scan, columns, y, {})


_NOT_FOR_FAST_PARSERS = re.compile(rb"\n[ \t]*\r?\n|nan\(", re.IGNORECASE)


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _text_codes(cells: Sequence[str], na: frozenset[str]) -> tuple[tuple[str, ...], FloatArray]:
    """The column's sorted distinct texts (kept verbatim) and each cell's code (NaN: missing)."""
    present = [c for c in cells if c.strip() not in na]
    cats = tuple(sorted(set(present)))
    position: dict[str, float] = {c: float(i) for i, c in enumerate(cats)}
    codes = np.fromiter((position.get(c, _NAN) if c.strip() not in na else _NAN
                         for c in cells), dtype=np.float64, count=len(cells))
    return cats, codes


def _read_target(
    columns: list[tuple[str, ...]], target: int | None, lines: list[int], names: list[str],
    na: frozenset[str], task: Task, path: str,
) -> tuple[np.ndarray[Any, Any] | None, tuple[str, ...]]:
    if target is None:
        return None, ()
    y = _target_column(columns[target], na, task, path, lines, target, names[target],
                       one_class_ok=True)
    return y, (() if task == "regression" else tuple(sorted(set(y.tolist()))))

def columns_to_reread(scans: Sequence[PartitionScan]) -> dict[int, list[int]]:
    """Per file, the feature columns it read as numbers although another file holds text
    there: their cells are categories too, so the file must report them as texts."""
    _check_headers(scans)
    n = len(scans[0].numeric)
    text_somewhere = [not all(s.numeric[k] for s in scans) for k in range(n)]
    out: dict[int, list[int]] = {}
    for p, scan in enumerate(scans):
        columns = [k for k in range(n) if text_somewhere[k] and scan.numeric[k]
                   and scan.n_rows > 0]
        if columns:
            out[p] = columns
    return out


def merge_scans(
    scans: Sequence[PartitionScan], options: CsvOptions,
    texts: dict[int, dict[int, tuple[str, ...]]] | None = None,
) -> Schema:
    """The schema of the concatenation of the scanned files (see the module docstring).

    ``texts[p][k]``: the distinct texts of column ``k`` of file ``p``, for every column
    :func:`columns_to_reread` names (read again with ``as_text``).

    Raises ``DataError`` naming the file and header column when headers differ, and when
    a classification target has fewer than two classes in all.
    """
    if not scans:
        raise ValueError("merge_scans needs at least one scan")
    needed = columns_to_reread(scans)
    texts = texts or {}
    missing = [(p, k) for p, ks in needed.items() for k in ks if k not in texts.get(p, {})]
    if missing:
        raise ValueError(f"merge_scans needs the texts of (file, column) {missing[:5]}")
    first = scans[0]
    names = first.names
    feature_cols = tuple(j for j in range(len(names)) if j != first.target)
    if not feature_cols:
        raise DataError("no feature columns (the files have only the target column)",
                        path=first.path)
    features = []
    for k, j in enumerate(feature_cols):
        if all(s.numeric[k] for s in scans):
            features.append(Feature(names[j], "numeric"))
            continue
        cats = {text for s in scans for text in s.texts[k]}
        cats.update(text for p in needed for text in texts[p].get(k, ()))
        features.append(Feature(names[j], "categorical", tuple(sorted(cats))))
    return _finish_schema(scans, options, tuple(features), feature_cols)


def _check_headers(scans: Sequence[PartitionScan]) -> None:
    first = scans[0]
    for scan in scans[1:]:
        if scan.names != first.names:
            pairs = enumerate(zip(scan.names, first.names, strict=False))
            j = next((i for i, (a, b) in pairs if a != b),
                     min(len(scan.names), len(first.names)))
            raise DataError(
                f"the header differs from {first.path}'s ({len(scan.names)} columns against "
                f"{len(first.names)}; first difference in column {j + 1})",
                path=scan.path, line=1, column=j + 1,
            )


def _finish_schema(
    scans: Sequence[PartitionScan], options: CsvOptions, features: tuple[Feature, ...],
    feature_cols: tuple[int, ...],
) -> Schema:
    first = scans[0]
    names = first.names
    classes: tuple[str, ...] = ()
    if first.target is not None and options.task == "classification":
        classes = tuple(sorted({label for s in scans for label in s.labels}))
        if len(classes) < 2 and any(s.n_rows > 0 for s in scans):
            raise DataError(
                f"the target has a single class {classes[0]!r} in all files; classification "
                "needs at least two", path=first.path, column=first.target + 1,
                column_name=names[first.target],
            )
    if not any(s.n_rows > 0 for s in scans):
        raise DataError("no data rows in any file (only headers)", path=first.path)
    target_name = names[first.target] if first.target is not None else "target"
    return Schema(features, classes, target_name, options.task,
                  first.target is not None, feature_cols, first.target)


def text_columns(scan: PartitionScan, schema: Schema) -> list[int]:
    """Feature columns this file read as numbers that the schema makes categorical."""
    return [k for k, f in enumerate(schema.features) if f.is_categorical and scan.numeric[k]]


def ensure_texts(table: PartitionTable, schema: Schema, options: CsvOptions) -> PartitionTable:
    """The table, read again with text columns where the merged schema needs them."""
    need = [k for k in text_columns(table.scan, schema) if k not in table.texts_of]
    if not need or table.scan.n_rows == 0:
        for k in need:
            table.texts_of[k] = ()
        return table
    return read_partition(table.scan.path, options, as_text=need)


def encode_partition(table: PartitionTable, schema: Schema, options: CsvOptions
                     ) -> tuple[FloatArray, npt.NDArray[Any]]:
    """A file's rows in the merged schema (reading it again if a column changed kind)."""
    return ensure_texts(table, schema, options).encode(schema)
