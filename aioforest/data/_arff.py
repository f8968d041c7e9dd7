"""ARFF reader (Weka's attribute-relation file format, dense rows)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any, Literal, get_args

import numpy as np

from ._dataset import ColumnRef, Dataset, Feature, FloatArray, Task, _freeze
from ._errors import DataError
from ._source import PathOrFile, open_text

__all__ = ["read_arff"]

_NAN = math.nan
_BARE_NAME = re.compile(r"([^\s{]+)\s*(.*)$", re.S)


@dataclass(frozen=True, slots=True)
class _Attribute:
    name: str
    kind: Literal["numeric", "nominal", "string"]
    values: tuple[str, ...]  # declared values of a nominal attribute
    line: int


def read_arff(
    path_or_file: PathOrFile,
    *,
    target: ColumnRef | None = -1,
    task: Task | None = None,
) -> Dataset:
    """Read a dense ARFF file into a :class:`Dataset`.

    Supported: ``@relation``; ``@attribute NAME numeric|real|integer``, ``@attribute NAME
    {v1, v2, ...}`` (nominal) and ``@attribute NAME string`` (read as categorical); ``@data``
    rows of comma-separated values; ``%`` comment lines; ``?`` for a missing value; names and
    values quoted with ``'`` or ``"`` (backslash escapes). Keywords are case-insensitive.
    Sparse rows (``{0 x, 3 y}``), ``date`` and ``relational`` attributes are rejected.

    A nominal feature's ``categories`` are its **declared** values in **declared order**
    (unlike CSV, where they are sorted); a value not declared is an error. String attributes
    get their observed values, sorted.

    ``target`` is an attribute index (negative counts from the end; default: the last) or
    name, or ``None`` for no labels. ``task`` defaults to ``"classification"`` for a nominal or
    string target (labels kept as ``str``) and ``"regression"`` for a numeric one (float64).
    Classification needs at least two distinct labels.

    Raises :class:`DataError` naming the file, the 1-based physical line and the 1-based column
    for any malformed declaration or row.
    """
    if task is not None and task not in get_args(Task):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    with open_text(path_or_file) as (f, path, source):
        attributes, rows, starts = _parse(f, path)
    d = len(attributes)
    names = [a.name for a in attributes]

    t: int | None = None
    if target is not None:
        t = _target_index(target, names, path)
    for i, fields in enumerate(rows):
        if len(fields) != d:
            found = len(fields)
            where = found + 1 if found < d else d + 1
            raise DataError(f"expected {d} values, found {found}", path=path, line=starts[i],
                            column=where, column_name=names[found] if found < d else None)
    feature_idx = [j for j in range(d) if j != t]
    if not feature_idx:
        raise DataError("no feature attributes (only the target)", path=path)

    encoded = np.empty((len(rows), len(feature_idx)), dtype=np.float64)
    features: list[Feature] = []
    for k, j in enumerate(feature_idx):
        feature, column = _convert(attributes[j], [r[j] for r in rows], j, path, starts)
        features.append(feature)
        encoded[:, k] = column

    y = None
    target_name = "target"
    resolved_task: Task = task or "classification"
    if t is not None:
        attr = attributes[t]
        target_name = attr.name
        resolved_task = task or ("regression" if attr.kind == "numeric" else "classification")
        y = _labels(attr, [r[t] for r in rows], t, path, starts, resolved_task)
    return Dataset._from_parts(encoded, y, tuple(features), target_name=target_name,
                               source=source, task=resolved_task)


def _parse(
    f: IO[str], path: str
) -> tuple[list[_Attribute], list[list[str | None]], list[int]]:
    attributes: list[_Attribute] = []
    seen: dict[str, int] = {}
    rows: list[list[str | None]] = []
    starts: list[int] = []
    in_data = False
    try:
        for lineno, raw in enumerate(f, 1):
            text = raw.strip()
            if not text or text.startswith("%"):
                continue
            if in_data:
                if text.startswith("{"):
                    raise DataError("sparse ARFF rows are not supported", path=path,
                                    line=lineno, column=1)
                rows.append(_split_fields(text, path, lineno))
                starts.append(lineno)
                continue
            if not text.startswith("@"):
                raise DataError(f"expected @relation, @attribute or @data, got {text[:40]!r}",
                                path=path, line=lineno)
            parts = text[1:].split(None, 1)
            keyword = parts[0].lower() if parts else ""
            rest = parts[1] if len(parts) > 1 else ""
            if keyword == "relation":
                continue
            if keyword == "attribute":
                attr = _parse_attribute(rest, path, lineno)
                if attr.name in seen:
                    raise DataError(f"duplicate attribute name {attr.name!r} (first declared "
                                    f"on line {seen[attr.name]})", path=path, line=lineno)
                seen[attr.name] = lineno
                attributes.append(attr)
            elif keyword == "data":
                if not attributes:
                    raise DataError("@data before any @attribute", path=path, line=lineno)
                in_data = True
            else:
                raise DataError(f"unsupported declaration @{keyword}", path=path, line=lineno)
    except UnicodeDecodeError as exc:
        raise DataError(f"not valid UTF-8 text ({exc.reason})", path=path) from None
    if not attributes:
        raise DataError("no @attribute declarations", path=path)
    if not in_data:
        raise DataError("no @data section", path=path)
    if not rows:
        raise DataError("no data rows after @data", path=path)
    return attributes, rows, starts


def _parse_attribute(rest: str, path: str, line: int) -> _Attribute:
    rest = rest.strip()
    if not rest:
        raise DataError("@attribute without a name", path=path, line=line)
    if rest[0] in "'\"":
        name, end = _quoted(rest, 0, path, line, column=None)
        type_text = rest[end:].strip()
    else:
        match = _BARE_NAME.match(rest)
        assert match is not None  # rest is non-empty and starts with a non-space
        name, type_text = match.group(1), match.group(2).strip()
    if not type_text:
        raise DataError(f"attribute {name!r} has no type", path=path, line=line)
    lowered = type_text.lower()
    if lowered in ("numeric", "real", "integer"):
        return _Attribute(name, "numeric", (), line)
    if lowered == "string":
        return _Attribute(name, "string", (), line)
    if type_text.startswith("{"):
        if not type_text.endswith("}"):
            raise DataError(f"attribute {name!r}: nominal values must end with '}}'",
                            path=path, line=line)
        values: list[str] = []
        for value in _split_fields(type_text[1:-1], path, line):
            if not value:
                raise DataError(f"attribute {name!r}: empty or '?' nominal value", path=path,
                                line=line)
            if value in values:
                raise DataError(f"attribute {name!r}: nominal value {value!r} is declared "
                                f"twice", path=path, line=line)
            values.append(value)
        return _Attribute(name, "nominal", tuple(values), line)
    raise DataError(f"attribute {name!r}: unsupported type {type_text!r} (supported: numeric, "
                    f"real, integer, string, {{nominal values}})", path=path, line=line)


def _quoted(text: str, i: int, path: str, line: int, column: int | None) -> tuple[str, int]:
    """Unquote the value starting at ``text[i]`` (a quote); return it and the index after."""
    quote = text[i]
    i += 1
    out: list[str] = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
        elif c == quote:
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise DataError("unterminated quoted value", path=path, line=line, column=column)


def _split_fields(text: str, path: str, line: int) -> list[str | None]:
    """Split a comma-separated ARFF line; an unquoted ``?`` becomes None (missing)."""
    if "'" not in text and '"' not in text:
        return [None if p == "?" else p for p in (part.strip() for part in text.split(","))]
    out: list[str | None] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] in "'\"":
            value, i = _quoted(text, i, path, line, column=len(out) + 1)
            out.append(value)
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] != ",":
                raise DataError("unexpected text after a quoted value", path=path, line=line,
                                column=len(out))
        else:
            end = text.find(",", i)
            end = n if end == -1 else end
            token = text[i:end].strip()
            out.append(None if token == "?" else token)
            i = end
        if i >= n:
            return out
        i += 1  # the comma


def _target_index(target: ColumnRef, names: Sequence[str], path: str) -> int:
    d = len(names)
    if isinstance(target, bool) or not isinstance(target, str | int | np.integer):
        raise TypeError(f"target must be an attribute name or index, got {target!r}")
    if isinstance(target, str):
        if target not in names:
            raise DataError(f"target attribute {target!r} not found; attributes are "
                            f"{', '.join(map(repr, names))}", path=path)
        return list(names).index(target)
    index = int(target)
    if not -d <= index < d:
        raise DataError(f"target index {index} is out of range for {d} attributes", path=path)
    return index % d


def _convert(
    attr: _Attribute, cells: list[str | None], j: int, path: str, starts: list[int]
) -> tuple[Feature, FloatArray]:
    def fail(i: int, reason: str) -> DataError:
        return DataError(reason, path=path, line=starts[i], column=j + 1, column_name=attr.name)

    n = len(cells)
    if attr.kind == "numeric":
        out = np.empty(n, dtype=np.float64)
        for i, cell in enumerate(cells):
            if cell is None:
                out[i] = _NAN
                continue
            try:
                out[i] = float(cell)
            except ValueError:
                raise fail(i, f"value {cell!r} is not a number") from None
        return Feature(attr.name, "numeric"), out
    if attr.kind == "nominal":
        categories = attr.values
    else:
        categories = tuple(sorted({c for c in cells if c is not None}))
    position = {c: float(i) for i, c in enumerate(categories)}
    codes = np.empty(n, dtype=np.float64)
    for i, cell in enumerate(cells):
        if cell is None:
            codes[i] = _NAN
            continue
        code = position.get(cell)
        if code is None:
            shown = ", ".join(attr.values)
            raise fail(i, f"value {cell!r} is not declared for this attribute ({{{shown}}})")
        codes[i] = code
    return Feature(attr.name, "categorical", categories), codes


def _labels(
    attr: _Attribute,
    cells: list[str | None],
    t: int,
    path: str,
    starts: list[int],
    task: Task,
) -> np.ndarray[Any, Any]:
    def fail(i: int, reason: str) -> DataError:
        return DataError(reason, path=path, line=starts[i], column=t + 1, column_name=attr.name)

    if task == "regression" and attr.kind != "numeric":
        raise DataError(f"target attribute {attr.name!r} is {attr.kind}; a regression target "
                        f"must be numeric", path=path, line=attr.line)
    for i, cell in enumerate(cells):
        if cell is None:
            raise fail(i, "missing target value '?'")
    present = [c for c in cells if c is not None]  # all of them; narrows the type for mypy
    labels: np.ndarray[Any, Any]
    if attr.kind == "numeric":
        labels = np.empty(len(present), dtype=np.float64)
        for i, cell in enumerate(present):
            try:
                labels[i] = float(cell)
            except ValueError:
                raise fail(i, f"target value {cell!r} is not a number") from None
    else:
        if attr.kind == "nominal":
            declared = set(attr.values)
            for i, cell in enumerate(present):
                if cell not in declared:
                    shown = ", ".join(attr.values)
                    raise fail(i, f"value {cell!r} is not declared for this attribute "
                                  f"({{{shown}}})")
        labels = np.empty(len(present), dtype=object)
        labels[:] = present
    if task == "classification" and len(set(present)) < 2:
        raise DataError(f"the target has a single class {present[0]!r}; classification needs "
                        f"at least two", path=path, column=t + 1, column_name=attr.name)
    return _freeze(labels)
