"""ConfusionMatrix construction, indexing, summing and formatting."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aioforest.evaluation import ConfusionMatrix, confusion_matrix

# GoLearn's hand-built matrix (evaluation/confusion_test.go), as label vectors.
GOLEARN_TRUE = ["a"] * 80 + ["b"] * 20
GOLEARN_PRED = ["a"] * 75 + ["b"] * 5 + ["a"] * 10 + ["b"] * 10


def test_golearn_matrix_from_vectors() -> None:
    cm = confusion_matrix(GOLEARN_TRUE, GOLEARN_PRED)
    assert cm.labels == ("a", "b")
    assert cm.counts.dtype == np.int64
    assert cm.counts.tolist() == [[75, 5], [10, 10]]
    assert cm["a", "a"] == 75
    assert cm["a", "b"] == 5
    assert cm["b", "a"] == 10
    assert cm["b", "b"] == 10
    assert cm.total == 100
    assert cm.to_dict() == {"a": {"a": 75, "b": 5}, "b": {"a": 10, "b": 10}}


def test_from_dict_round_trips_and_fills_missing_cells() -> None:
    cm = ConfusionMatrix.from_dict({"b": {"a": 10, "b": 10}, "a": {"a": 75, "b": 5}})
    assert cm == confusion_matrix(GOLEARN_TRUE, GOLEARN_PRED)
    sparse = ConfusionMatrix.from_dict({"x": {"y": 2}})
    assert sparse.labels == ("x", "y")
    assert sparse.to_dict() == {"x": {"x": 0, "y": 2}, "y": {"x": 0, "y": 0}}


def test_rows_are_actual_and_columns_are_predicted() -> None:
    cm = confusion_matrix(["cat", "cat", "cat"], ["dog", "dog", "cat"])
    assert cm.counts.tolist() == [[1, 2], [0, 0]]
    assert cm["cat", "dog"] == 2
    assert cm["dog", "cat"] == 0


def test_labels_are_sorted_union_of_both_inputs() -> None:
    cm = confusion_matrix(["z", "m"], ["a", "m"])
    assert cm.labels == ("a", "m", "z")
    assert cm["z", "a"] == 1
    assert cm["m", "m"] == 1


def test_integer_labels_from_numpy_sort_numerically_and_become_python_ints() -> None:
    cm = confusion_matrix(np.array([10, 2, 2]), np.array([2, 10, 2]))
    assert cm.labels == (2, 10)
    assert all(type(v) is int for v in cm.labels)
    assert cm.counts.tolist() == [[1, 1], [1, 0]]


def test_numpy_string_arrays_and_lists_agree() -> None:
    arrays = confusion_matrix(np.array(GOLEARN_TRUE), np.array(GOLEARN_PRED))
    assert arrays == confusion_matrix(GOLEARN_TRUE, GOLEARN_PRED)
    assert all(type(v) is str for v in arrays.labels)


def test_mixed_label_types_sort_by_str_deterministically() -> None:
    cm = confusion_matrix([2, "b", 10], ["b", 2, 10])
    assert cm.labels == (10, 2, "b")
    assert confusion_matrix([10, "b", 2], [2, 10, "b"]).labels == cm.labels
    # 1 and "1" are distinct labels whose order does not depend on input order.
    assert (
        confusion_matrix([1, "1"], ["1", 1]).labels == confusion_matrix(["1", 1], [1, "1"]).labels
    )


def test_explicit_labels_add_empty_rows_and_are_sorted() -> None:
    cm = confusion_matrix(["a", "b"], ["a", "a"], labels=["c", "b", "a"])
    assert cm.labels == ("a", "b", "c")
    assert cm.counts.tolist() == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]


def test_explicit_labels_must_cover_the_data() -> None:
    with pytest.raises(ValueError, match=r"y_pred contains label 'z'.*not in labels"):
        confusion_matrix(["a"], ["z"], labels=["a"])
    with pytest.raises(ValueError, match="unique"):
        confusion_matrix(["a"], ["a"], labels=["a", "a"])


def test_length_mismatch_names_both_lengths() -> None:
    with pytest.raises(ValueError, match=r"len\(y_true\)=3 and len\(y_pred\)=2"):
        confusion_matrix([1, 2, 3], [1, 2])


@pytest.mark.parametrize(
    ("y_true", "y_pred", "error", "pattern"),
    [
        (
            "abc",
            ["a", "b", "c"],
            TypeError,
            "y_true must be a sequence of labels, not a single str",
        ),
        (np.zeros((2, 2)), [1, 2], ValueError, r"y_true must be 1-D.*\(2, 2\)"),
        ([1.0, float("nan")], [1.0, 1.0], ValueError, r"y_true\[1\] contains a NaN label"),
        ([[1], [2]], [1, 2], TypeError, r"y_true\[0\] contains an unhashable label"),
        (5, [5], TypeError, "got int"),
    ],
)
def test_bad_label_vectors_are_rejected(
    y_true: object, y_pred: object, error: type[Exception], pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        confusion_matrix(y_true, y_pred)  # type: ignore[arg-type]


def test_empty_inputs_give_an_empty_matrix() -> None:
    cm = confusion_matrix([], [])
    assert cm.labels == ()
    assert cm.counts.shape == (0, 0)
    assert cm.total == 0
    assert str(cm) == "(empty confusion matrix)"


def test_counts_are_read_only_and_the_matrix_is_frozen() -> None:
    cm = confusion_matrix(GOLEARN_TRUE, GOLEARN_PRED)
    with pytest.raises(ValueError, match="read-only"):
        cm.counts[0, 0] = 1
    with pytest.raises(AttributeError):
        cm.labels = ("x", "y")  # type: ignore[misc]


def test_constructor_copies_counts() -> None:
    raw = np.array([[1, 2], [3, 4]])
    cm = ConfusionMatrix(("a", "b"), raw)
    raw[0, 0] = 99
    assert cm["a", "a"] == 1


def test_constructor_reorders_unsorted_labels_with_their_counts() -> None:
    cm = ConfusionMatrix(("b", "a"), np.array([[10, 10], [5, 75]]))
    assert cm.labels == ("a", "b")
    assert cm.counts.tolist() == [[75, 5], [10, 10]]


@pytest.mark.parametrize(
    ("labels", "counts", "error", "pattern"),
    [
        (
            ("a", "b"),
            [[1, 2, 3]],
            ValueError,
            r"shape \(2, 2\) to match 2 labels, got shape \(1, 3\)",
        ),
        (("a", "a"), [[1, 2], [3, 4]], ValueError, "duplicates: a"),
        (("a",), [[-1]], ValueError, "non-negative"),
        (("a",), [[1.5]], ValueError, "whole numbers"),
        (("a",), [["x"]], TypeError, "integer array"),
    ],
)
def test_constructor_validates(
    labels: tuple[Hashable, ...], counts: object, error: type[Exception], pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        ConfusionMatrix(labels, np.asarray(counts))


def test_getitem_errors_are_clear() -> None:
    cm = confusion_matrix(["a"], ["b"])
    with pytest.raises(
        KeyError, match=r"label 'zz' is not in this confusion matrix; labels are \['a', 'b'\]"
    ):
        cm["a", "zz"]
    with pytest.raises(TypeError, match=r"cm\[actual, predicted\]"):
        cm["a"]  # type: ignore[index]
    with pytest.raises(KeyError, match="not in this confusion matrix"):
        cm[["unhashable"], "a"]  # type: ignore[index]


def test_add_same_labels_sums_counts() -> None:
    a = confusion_matrix(["x", "y"], ["x", "x"])
    b = confusion_matrix(["y", "y"], ["y", "x"])
    total = a + b
    assert total.labels == ("x", "y")
    assert total.counts.tolist() == [[1, 0], [2, 1]]
    assert sum([a, b]) == total  # builtin sum starts at 0


def test_add_different_labels_takes_the_union() -> None:
    a = confusion_matrix(["x"], ["x"])
    b = confusion_matrix(["z"], ["y"])
    total = a + b
    assert total.labels == ("x", "y", "z")
    assert total.to_dict() == {
        "x": {"x": 1, "y": 0, "z": 0},
        "y": {"x": 0, "y": 0, "z": 0},
        "z": {"x": 0, "y": 1, "z": 0},
    }
    assert b + a == total


def test_add_rejects_other_types() -> None:
    cm = confusion_matrix(["x"], ["x"])
    with pytest.raises(TypeError):
        cm + 1
    with pytest.raises(TypeError):
        cm + np.zeros((1, 1))


def test_with_labels_extends_without_changing_counts() -> None:
    cm = confusion_matrix(["b"], ["b"])
    wider = cm.with_labels(["a", "c"])
    assert wider.labels == ("a", "b", "c")
    assert wider["b", "b"] == 1
    assert wider.total == 1
    assert cm.with_labels(["b"]) is cm


def test_equality_and_hash() -> None:
    a = confusion_matrix(GOLEARN_TRUE, GOLEARN_PRED)
    b = confusion_matrix(list(reversed(GOLEARN_TRUE)), list(reversed(GOLEARN_PRED)))
    assert a == b
    assert hash(a) == hash(b)
    assert a != confusion_matrix(["a"], ["a"])
    assert a != "not a matrix"


def test_str_is_a_readable_matrix() -> None:
    cm = confusion_matrix(GOLEARN_TRUE, GOLEARN_PRED)
    assert str(cm) == (
        "actual \\ predicted   a   b\na                   75   5\nb                   10  10"
    )


label_st = st.sampled_from(["setosa", "versicolor", "virginica", "x"])


@st.composite
def label_pairs(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    y_true = draw(st.lists(label_st, max_size=60))
    y_pred = draw(st.lists(label_st, min_size=len(y_true), max_size=len(y_true)))
    return y_true, y_pred


@given(label_pairs())
def test_counts_sum_to_n_and_match_a_naive_count(pair: tuple[list[str], list[str]]) -> None:
    y_true, y_pred = pair
    cm = confusion_matrix(y_true, y_pred)
    assert cm.total == len(y_true)
    for actual in cm.labels:
        for predicted in cm.labels:
            expected = sum(
                t == actual and p == predicted for t, p in zip(y_true, y_pred, strict=True)
            )
            assert cm[actual, predicted] == expected


@given(label_pairs(), label_pairs())
def test_sum_of_matrices_equals_matrix_of_concatenation(
    first: tuple[list[str], list[str]], second: tuple[list[str], list[str]]
) -> None:
    joined = confusion_matrix(first[0] + second[0], first[1] + second[1])
    assert confusion_matrix(*first) + confusion_matrix(*second) == joined


@given(st.lists(st.integers(-5, 5), max_size=40), st.randoms(use_true_random=False))
def test_numpy_fast_path_agrees_with_python_path(values: list[int], rnd: object) -> None:
    preds = list(values)
    rnd.shuffle(preds)  # type: ignore[attr-defined]
    fast = confusion_matrix(np.array(values, dtype=np.int64), np.array(preds, dtype=np.int64))
    slow = confusion_matrix(values, preds)
    assert fast == slow
