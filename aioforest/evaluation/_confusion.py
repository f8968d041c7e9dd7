"""The confusion matrix: counts of (actual, predicted) label pairs over a sorted label set."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["ConfusionMatrix", "confusion_matrix"]

# dtype kinds for which numpy's own sort and equality agree with Python's on the
# converted scalars, so np.unique can stand in for a dict-based pass.
_FAST_KINDS = frozenset("biuU")


def _check_label(label: object, where: str) -> Hashable:
    """Normalise one label to a plain Python object and reject labels that cannot be matched."""
    if isinstance(label, np.generic):
        label = label.item()
    if isinstance(label, float) and math.isnan(label):
        # NaN != NaN, so a NaN label could never be found again by __getitem__.
        raise ValueError(f"{where} contains a NaN label; labels must compare equal to themselves")
    if not isinstance(label, Hashable):
        raise TypeError(f"{where} contains an unhashable label {label!r} ({type(label).__name__})")
    return label


def sort_labels(labels: Iterable[Hashable]) -> tuple[Hashable, ...]:
    """Sort labels naturally, falling back to sorting by ``str`` when the types do not compare.

    The fallback key also includes the type name so that, e.g., ``1`` and ``"1"`` still get a
    deterministic order independent of input order.
    """
    items = list(labels)
    try:
        return tuple(sorted(items))  # type: ignore[type-var]
    except TypeError:
        return tuple(sorted(items, key=lambda x: (str(x), type(x).__qualname__)))


def _as_labels(y: object, name: str) -> list[Any] | np.ndarray[Any, Any]:
    """Check that ``y`` is a 1-D label vector; return it as a fast-kind ndarray or a list."""
    if isinstance(y, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of labels, not a single {type(y).__name__}")
    if isinstance(y, np.ndarray):
        if y.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got an array of shape {y.shape}")
        return y if y.dtype.kind in _FAST_KINDS else list(y.tolist())
    if isinstance(y, Iterable):
        return list(y)
    raise TypeError(f"{name} must be a 1-D sequence or array of labels, got {type(y).__name__}")


def _factorize(
    y: list[Any] | np.ndarray[Any, Any], name: str
) -> tuple[npt.NDArray[np.intp], list[Hashable]]:
    """Codes into first-seen unique labels, which are normalised and validated.

    Validation runs on the uniques, not per element, so large object arrays (e.g. string labels
    read from a file) stay cheap; only on failure is ``y`` rescanned to name the offending index.
    """
    items: list[Any] = y.tolist() if isinstance(y, np.ndarray) else y
    seen: dict[Any, int] = {}
    try:
        codes = np.fromiter(
            (seen.setdefault(v, len(seen)) for v in items), dtype=np.intp, count=len(items)
        )
        uniques = [_check_label(v, name) for v in seen]
    except (TypeError, ValueError):
        for i, v in enumerate(items):
            _check_label(v, f"{name}[{i}]")
        raise
    return codes, uniques


@dataclass(frozen=True, eq=False)
class ConfusionMatrix:
    """Counts of (actual, predicted) pairs. Immutable.

    ``labels`` is a sorted tuple; ``counts[i, j]`` is the number of samples whose actual label is
    ``labels[i]`` and whose predicted label is ``labels[j]`` (actual classes are rows, predicted
    classes are columns). ``counts`` is a read-only ``int64`` array of shape ``(k, k)``.

    Constructing one directly validates the inputs and, if ``labels`` is not sorted, reorders both
    labels and counts so that the sorted-labels invariant always holds.
    """

    labels: tuple[Hashable, ...]
    counts: npt.NDArray[np.int64]
    _index: dict[Hashable, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        labels = tuple(_check_label(v, f"labels[{i}]") for i, v in enumerate(self.labels))
        if len(set(labels)) != len(labels):
            dupes = sorted({str(v) for v in labels if labels.count(v) > 1})
            raise ValueError(f"labels must be unique, got duplicates: {', '.join(dupes)}")
        raw = np.asarray(self.counts)
        k = len(labels)
        if raw.shape != (k, k):
            raise ValueError(
                f"counts must have shape ({k}, {k}) to match {k} labels, got shape {raw.shape}"
            )
        if raw.dtype.kind == "f":
            if not (np.all(np.isfinite(raw)) and np.all(raw == np.round(raw))):
                raise ValueError("counts must be whole numbers")
        elif raw.dtype.kind not in "iub":
            raise TypeError(f"counts must be an integer array, got dtype {raw.dtype}")
        counts = raw.astype(np.int64, copy=True)
        if counts.size and counts.min() < 0:
            raise ValueError("counts must be non-negative")
        ordered = sort_labels(labels)
        if ordered != labels:
            pos = {v: i for i, v in enumerate(labels)}
            perm = np.array([pos[v] for v in ordered], dtype=np.intp)
            counts = counts[np.ix_(perm, perm)]
            labels = ordered
        counts.setflags(write=False)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "_index", {v: i for i, v in enumerate(labels)})

    @classmethod
    def from_dict(cls, table: Mapping[Hashable, Mapping[Hashable, int]]) -> ConfusionMatrix:
        """Build from ``{actual: {predicted: count}}`` (GoLearn's map form); missing cells are 0."""
        labels = sort_labels(
            {_check_label(a, "actual label") for a in table}
            | {_check_label(p, "predicted label") for row in table.values() for p in row}
        )
        pos = {v: i for i, v in enumerate(labels)}
        counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
        for actual, row in table.items():
            for predicted, n in row.items():
                if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
                    raise TypeError(
                        f"count for ({actual!r}, {predicted!r}) must be an int, "
                        f"got {type(n).__name__}"
                    )
                counts[pos[_check_label(actual, "")], pos[_check_label(predicted, "")]] = n
        return cls(labels, counts)

    def index(self, label: Hashable) -> int:
        """Position of ``label`` in :attr:`labels`; ``KeyError`` naming the known labels if not."""
        try:
            return self._index[label]
        except (KeyError, TypeError):
            raise KeyError(
                f"label {label!r} is not in this confusion matrix; labels are {list(self.labels)!r}"
            ) from None

    @property
    def total(self) -> int:
        """Number of samples counted."""
        return int(self.counts.sum())

    def __getitem__(self, key: tuple[Hashable, Hashable]) -> int:
        """``cm[actual, predicted]`` → count."""
        if not isinstance(key, tuple) or len(key) != 2:
            raise TypeError(f"index a ConfusionMatrix as cm[actual, predicted], got {key!r}")
        actual, predicted = key
        return int(self.counts[self.index(actual), self.index(predicted)])

    def to_dict(self) -> dict[Hashable, dict[Hashable, int]]:
        """``{actual: {predicted: count}}`` over all label pairs (zeros included), sorted."""
        rows = self.counts.tolist()
        return {
            a: dict(zip(self.labels, row, strict=True))
            for a, row in zip(self.labels, rows, strict=True)
        }

    def with_labels(self, labels: Iterable[Hashable]) -> ConfusionMatrix:
        """The same counts over the union of :attr:`labels` and ``labels`` (new cells are 0)."""
        new = sort_labels(set(self.labels) | {_check_label(v, "labels") for v in labels})
        if new == self.labels:
            return self
        pos = np.array([new.index(v) for v in self.labels], dtype=np.intp)
        counts = np.zeros((len(new), len(new)), dtype=np.int64)
        counts[np.ix_(pos, pos)] = self.counts
        return ConfusionMatrix(new, counts)

    def __add__(self, other: object) -> ConfusionMatrix:
        """Sum two matrices (e.g. cross-validation folds); differing labels are unioned."""
        if not isinstance(other, ConfusionMatrix):
            return NotImplemented
        if self.labels == other.labels:
            return ConfusionMatrix(self.labels, self.counts + other.counts)
        union = set(self.labels) | set(other.labels)
        a, b = self.with_labels(union), other.with_labels(union)
        return ConfusionMatrix(a.labels, a.counts + b.counts)

    def __radd__(self, other: object) -> ConfusionMatrix:
        # Lets the builtin sum(cms) work: it starts from the integer 0.
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConfusionMatrix):
            return NotImplemented
        return self.labels == other.labels and bool(np.array_equal(self.counts, other.counts))

    def __hash__(self) -> int:
        return hash((self.labels, self.counts.tobytes()))

    def __str__(self) -> str:
        """A readable matrix with actual classes as rows and predicted classes as columns."""
        if not self.labels:
            return "(empty confusion matrix)"
        corner = "actual \\ predicted"
        names = [str(v) for v in self.labels]
        cells = [[str(n) for n in row] for row in self.counts.tolist()]
        first = max(len(corner), *(len(n) for n in names))
        widths = [max(len(names[j]), *(len(r[j]) for r in cells)) for j in range(len(names))]

        def line(head: str, row: list[str]) -> str:
            return "  ".join(
                [head.ljust(first), *(c.rjust(w) for c, w in zip(row, widths, strict=True))]
            )

        return "\n".join(
            [line(corner, names), *(line(n, r) for n, r in zip(names, cells, strict=True))]
        )


def confusion_matrix(
    y_true: Sequence[Hashable] | npt.ArrayLike,
    y_pred: Sequence[Hashable] | npt.ArrayLike,
    *,
    labels: Iterable[Hashable] | None = None,
) -> ConfusionMatrix:
    """Count how often each actual label (row) was predicted as each label (column).

    ``labels`` defaults to the sorted union of the labels in both inputs. When given, it may
    contain labels absent from the data (their rows and columns are zero), but every label in the
    data must be in it. Mixed label types that do not compare with each other sort by ``str``.
    """
    t = _as_labels(y_true, "y_true")
    p = _as_labels(y_pred, "y_pred")
    if len(t) != len(p):
        raise ValueError(
            f"y_true and y_pred must have the same length, got len(y_true)={len(t)} "
            f"and len(y_pred)={len(p)}"
        )
    if (
        labels is None
        and isinstance(t, np.ndarray)
        and isinstance(p, np.ndarray)
        and t.dtype.kind == p.dtype.kind
    ):
        uniq, inverse = np.unique(np.concatenate([t, p]), return_inverse=True)
        inverse = inverse.reshape(-1)
        label_tuple: tuple[Hashable, ...] = tuple(uniq.tolist())
        ti, pi = inverse[: len(t)], inverse[len(t) :]
    else:
        tc, tu = _factorize(t, "y_true")
        pc, pu = _factorize(p, "y_pred")
        if labels is None:
            label_tuple = sort_labels(set(tu) | set(pu))
        else:
            given = [_check_label(v, f"labels[{i}]") for i, v in enumerate(labels)]
            if len(set(given)) != len(given):
                raise ValueError("labels must be unique")
            label_tuple = sort_labels(given)
        pos = {v: i for i, v in enumerate(label_tuple)}
        ti = _lookup(tu, pos, "y_true")[tc]
        pi = _lookup(pu, pos, "y_pred")[pc]
    k = len(label_tuple)
    counts = np.bincount(ti * k + pi, minlength=k * k).astype(np.int64).reshape(k, k)
    return ConfusionMatrix(label_tuple, counts)


def _lookup(uniques: list[Hashable], pos: dict[Hashable, int], name: str) -> npt.NDArray[np.intp]:
    """Map each unique label to its position in the final label order."""
    missing = [v for v in uniques if v not in pos]
    if missing:
        raise ValueError(
            f"{name} contains label {missing[0]!r}, which is not in labels {list(pos)!r}"
        )
    return np.array([pos[v] for v in uniques], dtype=np.intp)
