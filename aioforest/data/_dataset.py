"""In-memory datasets: :class:`Feature`, :class:`Dataset` and the array coercion helpers.

Representation
--------------
A :class:`Dataset` keeps one float64 matrix, the *encoded* matrix: numeric columns hold their
values, categorical columns hold the index of the value in ``Feature.categories``, and a missing
cell is NaN. Everything else (the object-dtype ``.X`` of a mixed dataset) is derived from it on
demand, so ``take`` and the readers only ever build one numeric matrix.

Missing values
--------------
In arrays, a cell is missing when it is ``None``, a float NaN, or pandas' ``NA``/``NaT``.
Strings are never treated as missing markers here (the file readers have ``na_values``).

Matching values to categories (``encode_features``)
---------------------------------------------------
Strings match a category exactly (no stripping, case-sensitive). Numbers (Python or numpy
ints/floats, and numeric arrays) match a category whose text parses as the same float, so the
integer ``1`` and the float ``1.0`` both match a category ``"1"`` read from a CSV file. Booleans
match ``"True"``/``"False"``. A value that matches no category (an *unseen* category) is encoded
as NaN, i.e. treated exactly like a missing value.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self, cast, get_args

import numpy as np
import numpy.typing as npt

from ._errors import DataError

__all__ = [
    "ColumnRef",
    "Dataset",
    "Feature",
    "FeatureKind",
    "Task",
    "as_dataset",
    "encode_features",
    "infer_features",
]

FeatureKind = Literal["numeric", "categorical"]
Task = Literal["classification", "regression"]
#: A column named by its name or by its 0-based index (negative counts from the end).
ColumnRef = str | int

FloatArray = npt.NDArray[np.float64]
RowSelector = slice | Sequence[int] | npt.NDArray[np.integer[Any]] | npt.NDArray[np.bool_]

_NAN = math.nan
# Integral floats below this magnitude are written without ".0" (so 3.0 -> "3"); above it the
# shortest repr is kept, which is both exact and short.
_INT_TEXT_LIMIT = 2.0**53


@dataclass(frozen=True, slots=True)
class Feature:
    """One input column: its name, its kind, and for a categorical column its categories.

    ``categories`` is the tuple of values a categorical feature can take; a category's position
    in it is the value used in encoded matrices. Readers of CSV files and arrays sort it; ARFF
    nominal attributes keep their declared order. It is empty for numeric features.
    """

    name: str
    kind: FeatureKind
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"Feature name must be a str, got {type(self.name).__name__}")
        if self.kind not in get_args(FeatureKind):
            raise ValueError(f"Feature {self.name!r}: kind must be 'numeric' or 'categorical', "
                             f"got {self.kind!r}")
        categories: object = self.categories
        if not isinstance(categories, tuple):
            # A list would make the frozen dataclass unhashable; normalise instead of failing.
            object.__setattr__(self, "categories", tuple(self.categories))
        if self.kind == "numeric" and self.categories:
            raise ValueError(f"numeric feature {self.name!r} cannot have categories")
        if not all(isinstance(c, str) for c in self.categories):
            raise TypeError(f"categorical feature {self.name!r}: categories must be str")
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"categorical feature {self.name!r} has duplicate categories")

    @property
    def is_categorical(self) -> bool:
        """True for a categorical feature."""
        return self.kind == "categorical"


# --------------------------------------------------------------------------- cell helpers


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return bool(value != value)
    # pandas.NA / pandas.NaT without importing pandas.
    return type(value).__name__ in ("NAType", "NaTType")


def _category_text(value: object) -> str:
    """The category string for a non-missing cell of a categorical column."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        if f.is_integer() and abs(f) < _INT_TEXT_LIMIT:
            return str(int(f))
        return repr(f)
    return str(value)


def _as_number(value: object) -> float | None:
    """The float a cell stands for when inferring column kinds, or None if it is not a number.

    Booleans are deliberately not numbers (a bool column is categorical, as in pandas).
    """
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _numeric_lookup(categories: tuple[str, ...]) -> dict[float, int]:
    lookup: dict[float, int] = {}
    for i, c in enumerate(categories):
        try:
            key = float(c)
        except ValueError:
            continue
        lookup.setdefault(key, i)
    return lookup


# --------------------------------------------------------------------------- array helpers


def is_dataframe(obj: object) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, pd.DataFrame)


def _as_2d(X: object, what: str = "X") -> np.ndarray[Any, Any]:
    """``X`` as a 2-D numeric or object array (string arrays become object arrays of str)."""
    if isinstance(X, Dataset):
        raise TypeError("internal error: a Dataset must be handled before _as_2d")
    if isinstance(X, np.ndarray):
        arr: np.ndarray[Any, Any] = X
    else:
        try:
            arr = np.asarray(X)
        except ValueError as exc:
            raise DataError(f"rows have different lengths ({exc})", array=what) from None
        if arr.dtype.kind in "USO":
            # np.asarray turns [[1, "a"]] into strings; keep the original Python objects.
            arr = np.empty(arr.shape, dtype=object)
            arr[...] = X
    if arr.ndim != 2:
        hint = "; wrap a single row as [row]" if arr.ndim == 1 else ""
        raise DataError(f"expected a 2-D array (n_samples, n_features), got shape "
                        f"{arr.shape}{hint}", array=what)
    if arr.dtype.kind in "US":
        arr = arr.astype(object)
    elif arr.dtype.kind not in "biufO":
        raise DataError(f"unsupported dtype {arr.dtype}", array=what)
    if arr.shape[1] == 0:
        raise DataError("no feature columns", array=what)
    return arr


def _feature_names(feature_names: Iterable[str] | None, d: int) -> list[str]:
    if feature_names is None:
        return [f"x{j}" for j in range(d)]
    names = list(feature_names)
    if len(names) != d:
        raise DataError(f"got {len(names)} feature names for {d} columns")
    seen: dict[str, int] = {}
    for j, name in enumerate(names):
        if not isinstance(name, str):
            raise DataError(f"feature name {name!r} is not a str", column=j + 1)
        if name in seen:
            raise DataError(f"duplicate feature name {name!r} (also column {seen[name] + 1})",
                            column=j + 1, column_name=name)
        seen[name] = j
    return names


def _resolve_columns(
    refs: Iterable[ColumnRef] | ColumnRef | None, names: Sequence[str], what: str
) -> set[int]:
    """0-based indices of the columns named (or indexed) by ``refs``."""
    if refs is None:
        return set()
    if isinstance(refs, str | int):
        refs = [refs]
    out: set[int] = set()
    for ref in refs:
        out.add(_resolve_column(ref, names, what))
    return out


def _resolve_column(ref: ColumnRef, names: Sequence[str], what: str) -> int:
    d = len(names)
    if isinstance(ref, bool) or not isinstance(ref, str | int | np.integer):
        raise TypeError(f"{what} column must be a name (str) or an index (int), got {ref!r}")
    if isinstance(ref, str):
        try:
            return list(names).index(ref)
        except ValueError:
            raise DataError(f"{what} column {ref!r} not found; columns are "
                            f"{', '.join(map(repr, names))}") from None
    index = int(ref)
    if not -d <= index < d:
        raise DataError(f"{what} column index {index} is out of range for {d} columns")
    return index % d


def _infer_column(
    col: np.ndarray[Any, Any], name: str, j: int, forced: bool
) -> tuple[Feature, FloatArray]:
    """Infer one column's feature and encode it (see the module docstring for the rules)."""
    n = col.shape[0]
    kind = col.dtype.kind
    if kind in "iuf":
        values = col.astype(np.float64)
        if not forced:
            return Feature(name, "numeric"), values
        return _categorical_from_floats(values, name)
    if kind == "b":
        texts: list[str | None] = ["True" if v else "False" for v in col.tolist()]
        return _categorical_from_texts(texts, name)
    if not forced:
        out = np.empty(n, dtype=np.float64)
        for i, v in enumerate(col.tolist()):
            if _is_missing(v):
                out[i] = _NAN
                continue
            number = _as_number(v)
            if number is None:
                break
            out[i] = number
        else:
            return Feature(name, "numeric"), out
    texts = [None if _is_missing(v) else _category_text(v) for v in col.tolist()]
    return _categorical_from_texts(texts, name)


def _categorical_from_floats(values: FloatArray, name: str) -> tuple[Feature, FloatArray]:
    present = ~np.isnan(values)
    uniq, inverse = np.unique(values[present], return_inverse=True)
    texts = [_category_text(u) for u in uniq.tolist()]
    categories = tuple(sorted(texts))
    position = {c: i for i, c in enumerate(categories)}
    code_of_unique = np.array([position[t] for t in texts], dtype=np.float64)
    codes = np.full(values.shape[0], _NAN)
    codes[present] = code_of_unique[inverse]
    return Feature(name, "categorical", categories), codes


def _categorical_from_texts(
    texts: Sequence[str | None], name: str
) -> tuple[Feature, FloatArray]:
    categories = tuple(sorted({t for t in texts if t is not None}))
    position: dict[str | None, float] = {c: float(i) for i, c in enumerate(categories)}
    position[None] = _NAN
    codes = np.fromiter((position[t] for t in texts), dtype=np.float64, count=len(texts))
    return Feature(name, "categorical", categories), codes


def _infer_and_encode(
    X: object,
    feature_names: Iterable[str] | None,
    categorical: Iterable[ColumnRef] | ColumnRef | None,
) -> tuple[tuple[Feature, ...], FloatArray]:
    arr = _as_2d(X)
    n, d = arr.shape
    names = _feature_names(feature_names, d)
    forced = _resolve_columns(categorical, names, "categorical")
    features: list[Feature] = []
    encoded = np.empty((n, d), dtype=np.float64)
    if arr.dtype.kind in "iuf" and not forced:
        encoded[...] = arr
        return tuple(Feature(name, "numeric") for name in names), encoded
    for j, name in enumerate(names):
        feature, column = _infer_column(arr[:, j], name, j, j in forced)
        features.append(feature)
        encoded[:, j] = column
    return tuple(features), encoded


def _encode_column(
    col: np.ndarray[Any, Any], feature: Feature, j: int, strict: bool
) -> FloatArray:
    """Encode one raw column for a known feature (unseen categories: NaN, or error if strict)."""
    kind = col.dtype.kind
    if feature.kind == "numeric":
        if kind in "biuf":
            return col.astype(np.float64)
        try:
            # Fast path: None becomes NaN, numbers and numeric strings convert in C.
            return col.astype(np.float64)
        except (TypeError, ValueError):
            pass
        out = np.empty(col.shape[0], dtype=np.float64)
        for i, v in enumerate(col.tolist()):
            if _is_missing(v):
                out[i] = _NAN
                continue
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                raise DataError(f"expected a number, got {v!r}", row=i, column=j + 1,
                                column_name=feature.name) from None
        return out

    by_text = {c: float(i) for i, c in enumerate(feature.categories)}
    if kind in "iuf":
        values = col.astype(np.float64)
        present = ~np.isnan(values)
        uniq, inverse = np.unique(values[present], return_inverse=True)
        by_number = _numeric_lookup(feature.categories)
        code_of_unique = np.array([by_number.get(u, _NAN) for u in uniq.tolist()],
                                  dtype=np.float64)
        codes = np.full(values.shape[0], _NAN)
        codes[present] = code_of_unique[inverse]
        if strict and np.isnan(code_of_unique).any():
            bad = int(np.flatnonzero(present & np.isnan(codes))[0])
            _unknown_category(values[bad], feature, bad, j)
        return codes

    by_number_lazy: dict[float, int] | None = None
    out = np.empty(col.shape[0], dtype=np.float64)
    for i, v in enumerate(col.tolist()):
        if _is_missing(v):
            out[i] = _NAN
            continue
        code: float | None
        if isinstance(v, str):
            code = by_text.get(v)
        elif isinstance(v, bool | np.bool_):
            code = by_text.get("True" if v else "False")
        elif isinstance(v, int | float | np.integer | np.floating):
            if by_number_lazy is None:
                by_number_lazy = _numeric_lookup(feature.categories)
            found = by_number_lazy.get(float(v))
            code = None if found is None else float(found)
        else:
            code = by_text.get(str(v))
        if code is None:
            if strict:
                _unknown_category(v, feature, i, j)
            code = _NAN
        out[i] = code
    return out


def _unknown_category(value: object, feature: Feature, i: int, j: int) -> None:
    shown = ", ".join(map(repr, feature.categories[:10]))
    more = ", ..." if len(feature.categories) > 10 else ""
    raise DataError(f"value {value!r} is not one of the categories ({shown}{more})",
                    row=i, column=j + 1, column_name=feature.name)


def _encode(X: object, features: tuple[Feature, ...], strict: bool) -> FloatArray:
    if is_dataframe(X):
        return _encode_dataframe(X, features, strict)
    arr = _as_2d(X)
    n, d = arr.shape
    if d != len(features):
        raise DataError(f"expected {len(features)} columns "
                        f"({', '.join(repr(f.name) for f in features)}), got {d}")
    if arr.dtype.kind in "biuf" and not any(f.is_categorical for f in features):
        return np.ascontiguousarray(arr, dtype=np.float64)
    out = np.empty((n, d), dtype=np.float64)
    for j, feature in enumerate(features):
        out[:, j] = _encode_column(arr[:, j], feature, j, strict)
    return out


def _match_columns(columns: Sequence[str], features: tuple[Feature, ...], what: str) -> list[int]:
    """Which input column feeds each feature, for inputs that carry column names.

    All feature names present: matched by name (order and extra columns, such as the label,
    do not matter). No name in common and as many columns as features: by position (e.g. a
    model fitted on an unnamed array). Anything in between is an error rather than a guess.
    """
    names = [f.name for f in features]
    position = {c: j for j, c in enumerate(columns)}
    if all(name in position for name in names):
        return [position[name] for name in names]
    if len(columns) == len(names) and not any(name in position for name in names):
        return list(range(len(names)))
    missing = [name for name in names if name not in position]
    raise DataError(f"{what} lacks feature columns {', '.join(map(repr, missing))}")


def _encode_dataframe(df: Any, features: tuple[Feature, ...], strict: bool) -> FloatArray:
    chosen = _match_columns([str(c) for c in df.columns], features, "DataFrame")
    selected = [df.iloc[:, j] for j in chosen]
    out = np.empty((len(df), len(features)), dtype=np.float64)
    for j, (feature, series) in enumerate(zip(features, selected, strict=True)):
        out[:, j] = _encode_column(_series_values(series), feature, j, strict)
    return out


def _series_values(series: Any) -> np.ndarray[Any, Any]:
    """A pandas Series as a numpy array: float64 for numeric dtypes, else object."""
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return cast("np.ndarray[Any, Any]", series.to_numpy(dtype=object))
    if pd.api.types.is_numeric_dtype(dtype):
        return cast("np.ndarray[Any, Any]", series.to_numpy(dtype=np.float64, na_value=np.nan))
    return cast("np.ndarray[Any, Any]", series.astype(object).to_numpy(dtype=object))


def _freeze(arr: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    arr.flags.writeable = False
    return arr


def _as_target(y: object, n: int, task: Task | None) -> tuple[np.ndarray[Any, Any] | None, Task]:
    """Validate labels: 1-D, length n, no missing values; strings become an object array."""
    if task is not None and task not in get_args(Task):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    if y is None:
        return None, task or "classification"
    if _is_series(y):
        y = cast(Any, y).to_numpy()
    arr = np.array(y)  # always a copy: the dataset owns (and freezes) its labels
    if arr.ndim != 1:
        raise DataError(f"y must be 1-D, got shape {arr.shape}", array="y")
    if arr.shape[0] != n:
        raise DataError(f"y has {arr.shape[0]} labels for {n} rows of X", array="y")
    kind = arr.dtype.kind
    if kind in "US":
        arr = arr.astype(object)
        kind = "O"
    if kind not in "biufO":
        raise DataError(f"unsupported label dtype {arr.dtype}", array="y")
    if task is None:
        task = "regression" if kind == "f" else "classification"
    if kind == "O":
        for i, v in enumerate(arr.tolist()):
            if _is_missing(v):
                raise DataError("missing label", row=i, array="y")
    elif kind == "f" and np.isnan(arr).any():
        raise DataError("missing label (NaN)", row=int(np.flatnonzero(np.isnan(arr))[0]),
                        array="y")
    if task == "regression" and kind != "f":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"regression target is not numeric: {exc}", array="y") from None
    return _freeze(arr), task


def as_target(y: object, n: int, task: Task | None = None) -> tuple[np.ndarray[Any, Any], Task]:
    """The labels a :class:`Dataset` of ``n`` rows would hold for ``y`` (a Series or array),
    and the task; ``DataError`` names a missing or malformed label. For a reader that
    encodes the features itself (in a known schema) and needs the labels alone."""
    if y is None:
        raise DataError("no labels given", array="y")
    labels, resolved = _as_target(y, n, task)
    return cast("np.ndarray[Any, Any]", labels), resolved


def _is_series(obj: object) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, pd.Series)


def _check_features(features: Iterable[Feature]) -> tuple[Feature, ...]:
    out = tuple(features)
    if not out:
        raise DataError("no features")
    seen: set[str] = set()
    for j, f in enumerate(out):
        if not isinstance(f, Feature):
            raise TypeError(f"features[{j}] is {type(f).__name__}, not Feature")
        if f.name in seen:
            raise DataError(f"duplicate feature name {f.name!r}", column=j + 1,
                            column_name=f.name)
        seen.add(f.name)
    return out


def _row_selector(rows: object, n: int) -> slice | npt.NDArray[np.intp]:
    if isinstance(rows, slice):
        return rows
    arr = np.asarray(rows)
    if arr.ndim != 1:
        raise IndexError(f"rows must be a slice or a 1-D array, got shape {arr.shape}")
    if arr.dtype.kind == "b":
        if arr.shape[0] != n:
            raise IndexError(f"boolean row mask has length {arr.shape[0]}, expected {n}")
        return np.flatnonzero(arr)
    if arr.size == 0:
        return np.empty(0, dtype=np.intp)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"row indices must be integers, got dtype {arr.dtype}")
    if arr.min() < -n or arr.max() >= n:
        raise IndexError(f"row index out of range for {n} rows")
    return arr.astype(np.intp, copy=False)


# --------------------------------------------------------------------------- Dataset


class Dataset:
    """An immutable table of samples: features ``X``, optional labels ``y`` and their schema.

    Build one with :func:`~aioforest.data.read_csv`, :func:`~aioforest.data.read_arff`,
    :meth:`from_arrays`, :meth:`from_dataframe`, :func:`as_dataset` or, given an explicit schema,
    ``Dataset(X, y, features)`` (which rejects values that are not among a feature's
    categories).

    * ``X`` is float64 of shape ``(n, d)`` when every feature is numeric. Otherwise it is an
      object array in which numeric columns hold Python floats (NaN when missing) and
      categorical columns hold ``str`` (``None`` when missing).
    * ``y`` holds the labels as given: an object array of ``str`` for labels read from a file,
      float64 for regression targets, or ``None`` for an unlabelled dataset.
    * :meth:`encoded` is the float64 matrix models consume (categories as codes, NaN missing).

    All arrays are read-only; :meth:`take` and the splitters make new datasets.
    """

    __slots__ = ("_X", "_classes", "_encoded", "_features", "_source", "_target_name", "_task",
                 "_y")

    _X: np.ndarray[Any, Any] | None
    _classes: tuple[Any, ...] | None
    _encoded: FloatArray
    _features: tuple[Feature, ...]
    _source: str | None
    _target_name: str
    _task: Task
    _y: np.ndarray[Any, Any] | None

    def __init__(
        self,
        X: object,
        y: object,
        features: Iterable[Feature],
        *,
        target_name: str = "target",
        source: str | None = None,
        task: Task | None = None,
    ) -> None:
        feats = _check_features(features)
        if isinstance(X, Dataset):
            X = X.X
        encoded = np.array(_encode(X, feats, strict=True), dtype=np.float64, order="C")
        labels, task = _as_target(y, encoded.shape[0], task)
        self._init(encoded, labels, feats, target_name, source, task)

    def _init(
        self,
        encoded: FloatArray,
        y: np.ndarray[Any, Any] | None,
        features: tuple[Feature, ...],
        target_name: str,
        source: str | None,
        task: Task,
    ) -> None:
        self._encoded = _freeze(encoded)
        self._y = y
        self._features = features
        self._target_name = target_name
        self._source = source
        self._task = task
        self._X = None
        self._classes = None

    @classmethod
    def _from_parts(
        cls,
        encoded: FloatArray,
        y: np.ndarray[Any, Any] | None,
        features: tuple[Feature, ...],
        *,
        target_name: str,
        source: str | None,
        task: Task,
    ) -> Self:
        """Trusted constructor: ``encoded`` must be a fresh C-contiguous float64 matrix that is
        consistent with ``features``; ``y`` already validated (and read-only)."""
        self = cls.__new__(cls)
        self._init(encoded, y, features, target_name, source, task)
        return self

    # ----------------------------------------------------------------- constructors

    @classmethod
    def from_arrays(
        cls,
        X: object,
        y: object = None,
        *,
        feature_names: Iterable[str] | None = None,
        categorical: Iterable[ColumnRef] | ColumnRef | None = None,
        target_name: str = "target",
        task: Task | None = None,
    ) -> Self:
        """Build a dataset from a 2-D array (numeric or object) or a list of rows.

        ``categorical`` lists columns (names or 0-based indices) to treat as categorical even
        if they hold numbers; their categories are the values as text (``1.0`` becomes
        ``"1"``, see the module notes). Other columns are numeric when they are of a numeric
        dtype, or (object arrays) when every non-missing cell is a number or a string that
        parses as one; bool columns and anything else are categorical. Categories are sorted.

        ``y`` may be ``None`` (unlabelled). ``task`` defaults to ``"regression"`` for float
        labels and ``"classification"`` otherwise; ``"regression"`` converts labels to float64.
        Feature names default to ``x0 .. x{d-1}``.
        """
        features, encoded = _infer_and_encode(X, feature_names, categorical)
        labels, task = _as_target(y, encoded.shape[0], task)
        return cls._from_parts(encoded, labels, features, target_name=target_name, source=None,
                               task=task)

    @classmethod
    def from_dataframe(
        cls,
        df: Any,
        target: Hashable | None = None,
        *,
        categorical: Iterable[str] | str | None = None,
        task: Task | None = None,
    ) -> Self:
        """Build a dataset from a pandas DataFrame (pandas is optional and imported lazily).

        ``target`` names the label column (or gives its position as an int); ``None`` makes an
        unlabelled dataset. Numeric columns (int, float, nullable numeric) are numeric features;
        bool, category, object and string columns are categorical (categories: the observed
        values as text, sorted), as are columns listed in ``categorical``. Feature names are the
        column labels as ``str``.
        """
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
        labels = [str(c) for c in df.columns]
        if len(set(labels)) != len(labels):
            raise DataError("DataFrame has duplicate column names")
        target_index: int | None = None
        if target is not None:
            if target in list(df.columns):
                target_index = list(df.columns).index(target)
            elif isinstance(target, int) and not isinstance(target, bool):
                target_index = _resolve_column(target, labels, "target")  # by position
            else:
                target_index = _resolve_column(str(target), labels, "target")
        feature_idx = [j for j in range(len(labels)) if j != target_index]
        names = [labels[j] for j in feature_idx]
        if not names:
            raise DataError("DataFrame has no feature columns")
        forced = _resolve_columns(categorical, names, "categorical")
        encoded = np.empty((len(df), len(names)), dtype=np.float64)
        features: list[Feature] = []
        for k, j in enumerate(feature_idx):
            series = df.iloc[:, j]
            values = _series_values(series)
            # Object columns (str, category, bool, mixed) are categorical by construction.
            is_cat = k in forced or values.dtype.kind == "O"
            feature, column = _infer_column(values, names[k], k, forced=is_cat)
            features.append(feature)
            encoded[:, k] = column
        y = None if target_index is None else _series_values_raw(df.iloc[:, target_index])
        target_name = "target" if target_index is None else labels[target_index]
        labels_arr, task = _as_target(y, len(df), task)
        return cls._from_parts(encoded, labels_arr, tuple(features), target_name=target_name,
                               source=None, task=task)

    # ----------------------------------------------------------------- properties

    @property
    def X(self) -> np.ndarray[Any, Any]:
        """The feature values (float64 if all features are numeric, else object; read-only)."""
        if self._X is None:
            if not any(f.is_categorical for f in self._features):
                self._X = self._encoded
            else:
                self._X = _freeze(_decode(self._encoded, self._features))
        return self._X

    @property
    def y(self) -> np.ndarray[Any, Any] | None:
        """The labels (read-only), or ``None`` for an unlabelled dataset."""
        return self._y

    @property
    def features(self) -> tuple[Feature, ...]:
        """The schema, one :class:`Feature` per column of ``X``."""
        return self._features

    @property
    def feature_names(self) -> list[str]:
        """The feature names (a new list each time)."""
        return [f.name for f in self._features]

    @property
    def target_name(self) -> str:
        """The name of the label column."""
        return self._target_name

    @property
    def task(self) -> Task:
        """``"classification"`` or ``"regression"`` (how the labels were read)."""
        return self._task

    @property
    def classes(self) -> tuple[Any, ...]:
        """Sorted distinct labels; empty for regression targets and unlabelled datasets."""
        if self._classes is None:
            if self._y is None or self._task == "regression":
                self._classes = ()
            else:
                try:
                    self._classes = tuple(np.unique(self._y).tolist())
                except TypeError:
                    raise DataError("labels are of mixed types that cannot be sorted",
                                    array="y") from None
        return self._classes

    @property
    def n_samples(self) -> int:
        """Number of rows."""
        return int(self._encoded.shape[0])

    @property
    def n_features(self) -> int:
        """Number of feature columns."""
        return len(self._features)

    @property
    def source(self) -> str | None:
        """The file the data was read from, if any."""
        return self._source

    def __len__(self) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        parts = [f"n_samples={self.n_samples}", f"n_features={self.n_features}"]
        if self._y is not None:
            parts.append(f"target={self._target_name!r}")
            if self._task == "classification":
                parts.append(f"n_classes={len(self.classes)}")
            else:
                parts.append("task='regression'")
        if self._source is not None:
            parts.append(f"source={self._source!r}")
        return f"Dataset({', '.join(parts)})"

    # ----------------------------------------------------------------- operations

    def encoded(self) -> FloatArray:
        """The C-contiguous float64 ``(n, d)`` matrix models train on (read-only, cached).

        Numeric columns hold their values, categorical columns the index of the value in
        ``feature.categories``; missing cells are NaN.
        """
        return self._encoded

    def take(self, rows: RowSelector) -> Dataset:
        """A new dataset of the given rows (a slice, integer indices or a boolean mask), with the
        same features, target name, task and source."""
        sel = _row_selector(rows, self.n_samples)
        # A step-1 slice stays a (read-only) view: taking a contiguous shard costs nothing.
        encoded = np.ascontiguousarray(self._encoded[sel])
        y = None if self._y is None else _freeze(self._y[sel])
        return type(self)._from_parts(encoded, y, self._features,
                                      target_name=self._target_name, source=self._source,
                                      task=self._task)

    def with_labels(self, y: object, *, task: Task | None = None) -> Dataset:
        """The same features with other labels (``None`` drops them)."""
        labels, task = _as_target(y, self.n_samples, task)
        return type(self)._from_parts(self._encoded.view(), labels, self._features,
                                      target_name=self._target_name, source=self._source,
                                      task=task)


def _series_values_raw(series: Any) -> np.ndarray[Any, Any]:
    """Labels from a pandas Series: float64 for float columns, otherwise the original values."""
    import pandas as pd

    if pd.api.types.is_float_dtype(series.dtype):
        return cast("np.ndarray[Any, Any]", series.to_numpy(dtype=np.float64, na_value=np.nan))
    if pd.api.types.is_numeric_dtype(series.dtype) and not series.isna().any():
        return cast("np.ndarray[Any, Any]", series.to_numpy())
    return cast("np.ndarray[Any, Any]", series.astype(object).to_numpy(dtype=object))


def _decode(encoded: FloatArray, features: tuple[Feature, ...]) -> np.ndarray[Any, Any]:
    n, d = encoded.shape
    out = np.empty((n, d), dtype=object)
    for j, feature in enumerate(features):
        column = encoded[:, j]
        if not feature.is_categorical:
            out[:, j] = column  # numpy stores Python floats in object arrays
            continue
        k = len(feature.categories)
        lookup = np.empty(k + 1, dtype=object)
        lookup[:k] = feature.categories
        lookup[k] = None
        index = np.where(np.isnan(column), k, np.nan_to_num(column, nan=0.0)).astype(np.intp)
        out[:, j] = lookup[index]
    return out


# --------------------------------------------------------------------------- public helpers


def infer_features(
    X: object,
    feature_names: Iterable[str] | None = None,
    categorical: Iterable[ColumnRef] | ColumnRef | None = None,
) -> tuple[Feature, ...]:
    """The features :meth:`Dataset.from_arrays` would infer for the raw array ``X``."""
    if is_dataframe(X):
        return Dataset.from_dataframe(X, categorical=cast(Any, categorical)).features
    return _infer_and_encode(X, feature_names, categorical)[0]


def encode_features(X: object, features: Sequence[Feature]) -> FloatArray:
    """Encode raw feature values for a known schema into a C-contiguous float64 matrix.

    ``X`` may be a float array, an object array (as in ``Dataset.X``) or a list of rows, whose
    columns are taken in order, or a :class:`Dataset` or pandas DataFrame, whose columns are
    matched to the features by name (extra columns are ignored; if no name matches and the
    column count does, by position). Numeric columns are converted to float; categorical
    values become their index in ``feature.categories``. Missing cells become NaN, and so do
    **unseen categories**: a value that is not among a feature's categories is treated as
    missing, never as an error. Values are raw values, not codes: pass ``Dataset.X``, not
    ``Dataset.encoded()``.

    Raises :class:`DataError` when the column count is wrong or a numeric feature gets a value
    that is not a number. The result may share memory with ``X`` (or be read-only); copy it
    before writing to it.
    """
    feats = tuple(features)
    if isinstance(X, Dataset):
        if X.features == feats:
            return X.encoded()
        chosen = _match_columns(X.feature_names, feats, "Dataset")
        return _encode(X.X[:, chosen], feats, strict=False)
    return _encode(X, feats, strict=False)


def as_dataset(
    X: object,
    y: object = None,
    *,
    feature_names: Iterable[str] | None = None,
    categorical: Iterable[ColumnRef] | ColumnRef | None = None,
    target_name: str = "target",
    task: Task | None = None,
) -> Dataset:
    """Coerce what an estimator's ``fit`` receives into a :class:`Dataset`.

    Accepts a :class:`Dataset` (``y``, when given, replaces its labels; ``feature_names`` and
    ``categorical`` must then be omitted), a pandas DataFrame (with ``y`` a Series or array),
    or a numeric/object array or list of rows (see :meth:`Dataset.from_arrays`).

    Always returns a Dataset; estimators read ``ds.features``, ``ds.encoded()`` (the float64
    matrix), ``ds.y`` and ``ds.feature_names`` from it. ``y`` may be ``None``.
    """
    from ._partitions import Partitions  # reads files; imported when used

    if isinstance(X, Partitions):
        if feature_names is not None or categorical is not None:
            raise TypeError("feature_names/categorical cannot be given with Partitions (give "
                            "them to Partitions)")
        X = X.read()
    if isinstance(X, Dataset):
        if feature_names is not None or categorical is not None:
            raise TypeError("feature_names/categorical cannot be given with a Dataset")
        if y is None and task is None:
            return X
        return X.with_labels(X.y if y is None else y, task=task)
    if is_dataframe(X):
        if feature_names is not None:
            raise TypeError("feature_names cannot be given with a DataFrame (its columns are "
                            "the names)")
        ds = Dataset.from_dataframe(X, categorical=cast(Any, categorical))
        labels, task = _as_target(y, ds.n_samples, task)
        return Dataset._from_parts(ds.encoded().view(), labels, ds.features,
                                   target_name=target_name, source=None, task=task)
    return Dataset.from_arrays(X, y, feature_names=feature_names, categorical=categorical,
                               target_name=target_name, task=task)
