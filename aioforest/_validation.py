"""Input and parameter checks shared by the tree and forest estimators.

Every message says which parameter or input was wrong and what was expected.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
import numpy.typing as npt

from .data import Dataset, Feature, Partitions, as_dataset, is_dataframe

__all__ = ["Prepared", "prepare", "resolve_seed"]

UNLIMITED_DEPTH = 1 << 30


@dataclass
class Prepared:
    """Training data in the form the engine wants."""

    X: npt.NDArray[np.float64]  # encoded, C-contiguous
    y: npt.NDArray[np.int64] | npt.NDArray[np.float64]  # class codes or targets
    sample_weight: npt.NDArray[np.float64] | None
    features: tuple[Feature, ...]
    feature_names: list[str] | None  # only when the input carried names
    classes: npt.NDArray[Any] | None
    #: rows per class when the rows live elsewhere (``X`` and ``y`` are then empty views)
    class_counts: npt.NDArray[np.int64] | None = None
    #: the rows live elsewhere: ``X`` and ``y`` hold no data (see :meth:`described`)
    remote: bool = False

    @classmethod
    def described(
        cls, features: tuple[Feature, ...], n_rows: int, classes: npt.NDArray[Any] | None,
        class_counts: npt.NDArray[np.int64] | None, *, named: bool = True,
    ) -> Prepared:
        """Data that lives elsewhere (a cluster's workers), described by its schema: ``X``
        and ``y`` have the right shapes but hold no memory and must not be read.
        ``named``: the features' names are the data's own (a table's columns), not the
        defaults an unnamed array gets."""
        X = np.broadcast_to(np.zeros((1, len(features))), (n_rows, len(features)))
        y: npt.NDArray[np.int64] | npt.NDArray[np.float64] = (
            np.broadcast_to(np.zeros(1, dtype=np.int64), (n_rows,)) if classes is not None
            else np.broadcast_to(np.zeros(1), (n_rows,))
        )
        return cls(X=X, y=y, sample_weight=None, features=features,
                   feature_names=[f.name for f in features] if named else None,
                   classes=classes,
                   class_counts=class_counts, remote=True)

    def counts_per_class(self) -> npt.NDArray[np.int64]:
        """Rows per class (classification)."""
        if self.class_counts is not None:
            return self.class_counts
        k = 0 if self.classes is None else self.classes.size
        return np.bincount(np.asarray(self.y, dtype=np.int64), minlength=k).astype(np.int64)

    @property
    def is_categorical(self) -> npt.NDArray[np.bool_]:
        return np.array([f.kind == "categorical" for f in self.features], dtype=bool)

    @property
    def n_categories(self) -> npt.NDArray[np.int64]:
        return np.array([len(f.categories) for f in self.features], dtype=np.int64)


class DataConversionWarning(UserWarning):
    """Input was converted (for example a column vector y raveled to 1-D)."""


_sklearn_conversion: type[UserWarning] | None = None


def _conversion_warning() -> type[UserWarning]:
    # scikit-learn's own class when it is loaded, so that its tooling recognises the warning
    global _sklearn_conversion
    if "sklearn.exceptions" not in sys.modules:
        return DataConversionWarning
    if _sklearn_conversion is None:
        base = sys.modules["sklearn.exceptions"].DataConversionWarning
        _sklearn_conversion = type("DataConversionWarning", (DataConversionWarning, base), {})
    return _sklearn_conversion


def check_array_input(X: object, what: str = "X") -> None:
    """Reject input kinds the data layer cannot take, with scikit-learn's wording."""
    if type(X).__module__.startswith("scipy.sparse") or hasattr(X, "tocsr"):
        raise TypeError(
            f"sparse input is not supported: {what} is a sparse matrix; densify it with "
            f"{what}.toarray()"
        )
    if isinstance(X, Dataset) or is_dataframe(X):
        return
    arr = X if isinstance(X, np.ndarray) else None
    if arr is None:
        try:
            arr = np.asarray(X, dtype=object)
        except ValueError:
            return  # ragged rows: the data layer names the row
    if arr.dtype.kind == "c" or (
        arr.dtype == object and arr.size and any(isinstance(v, complex) for v in arr.flat)
    ):
        raise ValueError(f"Complex data not supported: {what} holds complex numbers")
    if arr.ndim == 1:
        raise ValueError(
            f"Expected a 2-D array, got a 1-D array of shape {arr.shape}. Reshape your data "
            "either using X.reshape(-1, 1) if it has a single feature or X.reshape(1, -1) if "
            "it contains a single sample."
        )
    if arr.ndim == 2 and arr.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={arr.shape}) while a minimum of 1 is required."
        )
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 is "
            "required."
        )


def check_labels(y: object, classification: bool) -> object:
    arr = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        import warnings

        warnings.warn(
            "A column-vector y was passed when a 1d array was expected; it was raveled.",
            _conversion_warning(),
            stacklevel=4,
        )
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(f"y should be a 1d array, got an array of shape {arr.shape}")
    if classification and arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError("Input y contains NaN or infinity")
        if np.any(arr != np.round(arr)):
            raise ValueError(
                "Unknown label type: continuous. A classifier needs class labels; use a "
                "regressor for a continuous target"
            )
    return arr


def prepare(
    X: object, y: object, sample_weight: object, *, classification: bool
) -> Prepared:
    """Coerce ``fit``'s inputs (arrays, DataFrame, Dataset or Partitions) and check them."""
    if isinstance(X, Partitions):
        X = X.read()  # every file in this process: the local fit of a partitioned dataset
    named = isinstance(X, Dataset) or is_dataframe(X)
    check_array_input(X)
    if y is None and not isinstance(X, Dataset):
        raise ValueError(
            "this estimator requires y to be passed, but the target y is None "
            "(give y, or a Dataset with labels)"
        )
    if y is not None:
        y = check_labels(y, classification)
    ds = as_dataset(X, y, task="classification" if classification else "regression")
    if ds.y is None:
        raise ValueError("the Dataset has no labels; pass y")
    Xe = np.ascontiguousarray(ds.encoded(), dtype=np.float64)
    n = Xe.shape[0]
    if n == 0:
        raise ValueError("cannot fit on 0 samples")
    if Xe.shape[1] == 0:
        raise ValueError("cannot fit on 0 features")
    if np.isinf(Xe).any():
        r, c = np.argwhere(np.isinf(Xe))[0]
        raise ValueError(f"X contains infinity at row {r}, column {c}")
    classes: npt.NDArray[Any] | None = None
    if classification:
        classes, y_codes = np.unique(np.asarray(ds.y), return_inverse=True)
        yy: npt.NDArray[Any] = y_codes.astype(np.int64).reshape(-1)
    else:
        yy = np.asarray(ds.y, dtype=np.float64)
        if not np.isfinite(yy).all():
            raise ValueError("y contains NaN or infinity")
    sw = None
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=np.float64)
        if sw.shape != (n,):
            raise ValueError(f"sample_weight has shape {sw.shape}, expected ({n},)")
        if not np.isfinite(sw).all() or (sw < 0).any():
            raise ValueError("sample_weight must be finite and non-negative")
        if sw.sum() <= 0:
            raise ValueError("sample_weight sums to zero: nothing to learn from")
        if np.all(sw == 1.0):
            sw = None  # identical trees, and the faster integer path
    return Prepared(
        X=Xe, y=yy, sample_weight=sw, features=ds.features,
        feature_names=list(ds.feature_names) if named else None, classes=classes,
    )


def resolve_seed(random_state: object) -> int:
    """An integer seed from ``random_state`` (None draws a fresh one)."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    if isinstance(random_state, bool):
        raise ValueError(
            f"random_state must be an int, None or a numpy Generator, got {random_state!r}"
        )
    if isinstance(random_state, Integral):
        if int(random_state) < 0:
            raise ValueError(f"random_state must be non-negative, got {random_state}")
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    raise ValueError(
        f"random_state must be an int, None or a numpy Generator, got {random_state!r}"
    )


def check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def resolve_count(name: str, value: object, n: int, low: int) -> int:
    """An int >= low, or a float fraction of n in (0, 1] (scikit-learn's convention)."""
    if isinstance(value, Real) and not isinstance(value, Integral | bool):
        v = float(value)
        if not 0.0 < v <= 1.0:
            raise ValueError(f"{name} as a fraction must be in (0, 1], got {value!r}")
        return max(low, math.ceil(v * n))
    return check_int(name, value, low)


def resolve_max_features(value: object, n_features: int, name: str = "max_features") -> int:
    if value is None:
        return n_features
    if isinstance(value, str):
        if value == "sqrt":
            return max(1, int(math.sqrt(n_features)))
        if value == "log2":
            return max(1, int(math.log2(n_features)))
        raise ValueError(f"{name} must be 'sqrt', 'log2', an int, a float or None, got {value!r}")
    if isinstance(value, Real) and not isinstance(value, Integral | bool):
        v = float(value)
        if not 0.0 < v <= 1.0:
            raise ValueError(f"{name} as a fraction must be in (0, 1], got {value!r}")
        return max(1, int(v * n_features))
    k = check_int(name, value, 1)
    if k > n_features:
        raise ValueError(f"{name}={k} is more than the {n_features} features of X")
    return k


def check_criterion(criterion: object, classification: bool) -> str:
    allowed = ("gini", "entropy") if classification else ("squared_error",)
    if criterion not in allowed:
        raise ValueError(f"criterion must be one of {allowed}, got {criterion!r}")
    return str(criterion)


def resolve_class_weight(
    class_weight: object, classes: npt.NDArray[Any], counts: npt.NDArray[np.int64]
) -> tuple[float, ...] | None:
    """Per-class weights from ``class_weight`` given the rows per class (``counts``)."""
    if class_weight is None:
        return None
    k = classes.size
    if class_weight == "balanced":
        per_class = np.asarray(counts, dtype=np.float64)
        return tuple(float(v) for v in per_class.sum() / (k * per_class))
    if isinstance(class_weight, Mapping):
        unknown = [c for c in class_weight if c not in set(classes.tolist())]
        if unknown:
            raise ValueError(f"class_weight names classes not in y: {unknown!r}")
        out = []
        for c in classes.tolist():
            w = float(class_weight.get(c, 1.0))
            if not math.isfinite(w) or w < 0:
                raise ValueError(f"class_weight for class {c!r} must be finite and >= 0")
            out.append(w)
        return tuple(out)
    raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {class_weight!r}")


def check_min_impurity_decrease(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not float(value) >= 0:
        raise ValueError(f"min_impurity_decrease must be a number >= 0, got {value!r}")
    return float(value)


def check_fraction(name: str, value: object, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= float(value) <= high:
        raise ValueError(f"{name} must be a number in [0, {high}], got {value!r}")
    return float(value)
