"""Classification metrics over a ConfusionMatrix, plus two regression metrics.

Unlike GoLearn, no metric ever returns NaN: a ratio whose denominator is zero is reported as 0.0
and an :class:`UndefinedMetricWarning` names the metric and the label concerned.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Hashable, Iterable
from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from ._confusion import ConfusionMatrix

__all__ = [
    "Average",
    "UndefinedMetricWarning",
    "accuracy",
    "accuracy_score",
    "cross_validated_metric",
    "f1",
    "false_negatives",
    "false_positives",
    "mean_squared_error",
    "precision",
    "r2_score",
    "recall",
    "summary",
    "true_negatives",
    "true_positives",
]

Average = Literal["micro", "macro"]


class UndefinedMetricWarning(UserWarning):
    """A metric's denominator was zero, so 0.0 was returned instead of NaN.

    ``metric`` is the metric's name; ``label`` is the class concerned, or ``None`` for a metric
    over the whole matrix (accuracy, micro averages, regression scores).
    """

    def __init__(self, message: str, *, metric: str, label: Hashable | None = None) -> None:
        super().__init__(message)
        self.metric = metric
        self.label = label


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _warn(message: str, metric: str, label: Hashable | None = None) -> None:
    # Attribute the warning to the first frame outside this package (the user's call), however
    # deep inside summary()/cross_validated_metric() the undefined ratio was found.
    level, frame = 2, sys._getframe(1)  # stacklevel 1 is this function, 2 its caller
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(UndefinedMetricWarning(message, metric=metric, label=label), stacklevel=level)


def _undefined(message: str, metric: str, label: Hashable | None = None) -> float:
    _warn(message, metric, label)
    return 0.0


def true_positives(cm: ConfusionMatrix, label: Hashable) -> int:
    """Samples of class ``label`` predicted as ``label``."""
    i = cm.index(label)
    return int(cm.counts[i, i])


def false_positives(cm: ConfusionMatrix, label: Hashable) -> int:
    """Samples of another class predicted as ``label``."""
    i = cm.index(label)
    return int(cm.counts[:, i].sum() - cm.counts[i, i])


def false_negatives(cm: ConfusionMatrix, label: Hashable) -> int:
    """Samples of class ``label`` predicted as another class."""
    i = cm.index(label)
    return int(cm.counts[i, :].sum() - cm.counts[i, i])


def true_negatives(cm: ConfusionMatrix, label: Hashable) -> int:
    """Samples of another class not predicted as ``label``."""
    i = cm.index(label)
    c = cm.counts
    return int(c.sum() - c[i, :].sum() - c[:, i].sum() + c[i, i])


def accuracy(cm: ConfusionMatrix) -> float:
    """Fraction of samples on the diagonal; 0.0 (with a warning) for an empty matrix."""
    return _diagonal_share(cm, "accuracy", "accuracy")


def _diagonal_share(cm: ConfusionMatrix, metric: str, what: str) -> float:
    total = cm.total
    if total == 0:
        return _undefined(f"{what} is undefined for an empty confusion matrix; using 0.0", metric)
    return float(np.trace(cm.counts)) / total


def _per_label(cm: ConfusionMatrix, metric: str) -> dict[Hashable, float]:
    c = cm.counts
    tp = np.diag(c)
    predicted = c.sum(axis=0)  # TP + FP
    actual = c.sum(axis=1)  # TP + FN
    out: dict[Hashable, float] = {}
    for i, label in enumerate(cm.labels):
        if metric == "precision":
            num, den = int(tp[i]), int(predicted[i])
            why = f"no samples were predicted as {label!r} (TP + FP == 0)"
        elif metric == "recall":
            num, den = int(tp[i]), int(actual[i])
            why = f"no samples actually belong to {label!r} (TP + FN == 0)"
        else:
            # 2TP / (2TP + FP + FN) equals 2PR / (P + R) wherever that is defined, and is 0
            # (not NaN) when TP == 0 but the class occurs.
            num, den = 2 * int(tp[i]), int(predicted[i] + actual[i])
            why = f"{label!r} was neither predicted nor present (TP + FP + FN == 0)"
        if den == 0:
            out[label] = _undefined(
                f"{metric} is undefined for label {label!r}: {why}; using 0.0", metric, label
            )
        else:
            out[label] = num / den
    return out


def _averaged(
    cm: ConfusionMatrix, metric: str, average: Average | None
) -> dict[Hashable, float] | float:
    if average is None:
        return _per_label(cm, metric)
    if average == "micro":
        # For single-label classification, summed TP over summed TP + FP (or + FN) is the
        # trace over the total, i.e. accuracy, for all three metrics.
        return _diagonal_share(cm, metric, f"micro-averaged {metric}")
    if average == "macro":
        values = _per_label(cm, metric)
        if not values:
            return _undefined(
                f"macro-averaged {metric} is undefined for a matrix with no labels; using 0.0",
                metric,
            )
        return float(sum(values.values()) / len(values))
    raise ValueError(f"average must be None, 'micro' or 'macro', got {average!r}")


# The float overload comes first so that functools.partial(precision, average="macro") is typed
# as returning float (mypy resolves partial() against the first matching overload).
@overload
def precision(cm: ConfusionMatrix, *, average: Average) -> float: ...
@overload
def precision(cm: ConfusionMatrix, *, average: None = None) -> dict[Hashable, float]: ...
def precision(
    cm: ConfusionMatrix, *, average: Average | None = None
) -> dict[Hashable, float] | float:
    """TP / (TP + FP) per label (``average=None``), or its ``"micro"``/``"macro"`` average."""
    return _averaged(cm, "precision", average)


@overload
def recall(cm: ConfusionMatrix, *, average: Average) -> float: ...
@overload
def recall(cm: ConfusionMatrix, *, average: None = None) -> dict[Hashable, float]: ...
def recall(cm: ConfusionMatrix, *, average: Average | None = None) -> dict[Hashable, float] | float:
    """TP / (TP + FN) per label (``average=None``), or its ``"micro"``/``"macro"`` average."""
    return _averaged(cm, "recall", average)


@overload
def f1(cm: ConfusionMatrix, *, average: Average) -> float: ...
@overload
def f1(cm: ConfusionMatrix, *, average: None = None) -> dict[Hashable, float]: ...
def f1(cm: ConfusionMatrix, *, average: Average | None = None) -> dict[Hashable, float] | float:
    """Harmonic mean of precision and recall per label, or its ``"micro"``/``"macro"`` average.

    The macro average is the mean of the per-label F1 scores (not the F1 of macro precision and
    macro recall).
    """
    return _averaged(cm, "f1", average)


_SUMMARY_HEADERS = (
    "Reference Class",
    "True Positives",
    "False Positives",
    "True Negatives",
    "Precision",
    "Recall",
    "F1 Score",
)


def summary(cm: ConfusionMatrix) -> str:
    """A fixed-width table, one row per class in sorted order, then the overall accuracy.

    Columns: label, TP, FP, TN, precision, recall, F1 (4 decimals). The last line reads
    ``Overall accuracy: 0.8500``. The output depends only on the matrix.
    """
    prec, rec, f = precision(cm), recall(cm), f1(cm)
    rows = [
        (
            str(label),
            str(true_positives(cm, label)),
            str(false_positives(cm, label)),
            str(true_negatives(cm, label)),
            f"{prec[label]:.4f}",
            f"{rec[label]:.4f}",
            f"{f[label]:.4f}",
        )
        for label in cm.labels
    ]
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(_SUMMARY_HEADERS)]

    def line(cells: Iterable[str]) -> str:
        parts = [
            cell.ljust(w) if j == 0 else cell.rjust(w)
            for j, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    lines = [line(_SUMMARY_HEADERS), *(line(r) for r in rows)]
    lines.append(f"Overall accuracy: {accuracy(cm):.4f}")
    return "\n".join(lines)


def cross_validated_metric(
    cms: Iterable[ConfusionMatrix],
    metric: Callable[[ConfusionMatrix], float] = accuracy,
) -> tuple[float, float]:
    """Mean and population variance of ``metric`` over per-fold confusion matrices.

    ``metric`` must return a float; for per-label metrics pass e.g.
    ``functools.partial(precision, average="macro")``.
    """
    values: list[float] = []
    for i, cm in enumerate(cms):
        if not isinstance(cm, ConfusionMatrix):
            raise TypeError(f"cms[{i}] is a {type(cm).__name__}, not a ConfusionMatrix")
        v = metric(cm)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise TypeError(
                f"metric returned {type(v).__name__} for cms[{i}]; it must return a float "
                "(use e.g. functools.partial(precision, average='macro') for per-label metrics)"
            )
        values.append(float(v))
    if not values:
        raise ValueError("cross_validated_metric needs at least one confusion matrix")
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.var())


def _as_vector(y: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name} must be finite; {name}[{bad}] is {arr[bad]}")
    return arr


def _regression_pair(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    t, p = _as_vector(y_true, "y_true"), _as_vector(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length, got len(y_true)={len(t)} "
            f"and len(y_pred)={len(p)}"
        )
    if t.size == 0:
        raise ValueError("y_true and y_pred are empty; at least one sample is needed")
    return t, p


def mean_squared_error(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Mean of the squared residuals."""
    t, p = _regression_pair(y_true, y_pred)
    return float(np.mean((t - p) ** 2))


def _sample_weight(sample_weight: npt.ArrayLike | None, n: int) -> npt.NDArray[np.float64] | None:
    if sample_weight is None:
        return None
    w = _as_vector(sample_weight, "sample_weight")
    if w.size != n:
        raise ValueError(f"sample_weight has {w.size} values for {n} samples")
    if np.any(w < 0) or not w.sum() > 0:
        raise ValueError("sample_weight must be >= 0 with a positive sum")
    return w


def r2_score(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, sample_weight: npt.ArrayLike | None = None
) -> float:
    """Coefficient of determination, 1 - SS_res / SS_tot (weighted by ``sample_weight``).

    scikit-learn's ``force_finite`` convention: if ``y_true`` is constant (SS_tot is 0) the
    score is 1.0 for a perfect prediction, otherwise 0.0 with an
    :class:`UndefinedMetricWarning` (never NaN or -inf). Every R^2 in aioforest is this one:
    regressors' ``score`` and ``oob_score_`` too.
    """
    t, p = _regression_pair(y_true, y_pred)
    w = _sample_weight(sample_weight, t.size)
    scale: npt.NDArray[np.float64] | float = 1.0 if w is None else w
    # Weighted sums, as scikit-learn computes them (not means), so that scores agree bitwise.
    ss_res = float(np.sum(scale * (t - p) ** 2))
    ss_tot = float(np.sum(scale * (t - np.average(t, weights=w)) ** 2))
    if ss_res == 0.0:
        return 1.0
    if ss_tot == 0.0:
        return _undefined(
            "r2_score is undefined when y_true is constant and the prediction is not exact; "
            "using 0.0",
            "r2_score",
        )
    return 1.0 - ss_res / ss_tot


def accuracy_score(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, sample_weight: npt.ArrayLike | None = None
) -> float:
    """The (``sample_weight``-weighted) fraction of labels predicted exactly.

    The label-level twin of :func:`accuracy`, which reads a confusion matrix; classifiers'
    ``score`` and ``oob_score_`` use this one. 0.0 (with a warning) for no samples.
    """
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.ndim != 1 or t.shape != p.shape:
        raise ValueError(
            f"y_true and y_pred must be 1-D of the same length, got shapes {t.shape} and "
            f"{p.shape}"
        )
    w = _sample_weight(sample_weight, t.size)
    if t.size == 0:
        return _undefined("accuracy is undefined for no samples; using 0.0", "accuracy")
    return float(np.average(t == p, weights=w))
