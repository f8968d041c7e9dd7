"""Classification and regression metrics, ported from GoLearn's exact-value tests."""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from aioforest.evaluation import (
    ConfusionMatrix,
    UndefinedMetricWarning,
    accuracy,
    confusion_matrix,
    cross_validated_metric,
    f1,
    false_negatives,
    false_positives,
    mean_squared_error,
    precision,
    r2_score,
    recall,
    summary,
    true_negatives,
    true_positives,
)


@pytest.fixture
def golearn_cm() -> ConfusionMatrix:
    """GoLearn's hand-built matrix: actual a → a 75, b 5; actual b → a 10, b 10."""
    return ConfusionMatrix.from_dict({"a": {"a": 75, "b": 5}, "b": {"a": 10, "b": 10}})


def test_counts_per_label(golearn_cm: ConfusionMatrix) -> None:
    assert (true_positives(golearn_cm, "a"), false_positives(golearn_cm, "a")) == (75, 10)
    assert (false_negatives(golearn_cm, "a"), true_negatives(golearn_cm, "a")) == (5, 10)
    assert (true_positives(golearn_cm, "b"), false_positives(golearn_cm, "b")) == (10, 5)
    assert (false_negatives(golearn_cm, "b"), true_negatives(golearn_cm, "b")) == (10, 75)


def test_count_helpers_reject_unknown_labels(golearn_cm: ConfusionMatrix) -> None:
    with pytest.raises(KeyError, match="label 'c' is not in this confusion matrix"):
        true_positives(golearn_cm, "c")


def test_golearn_precision(golearn_cm: ConfusionMatrix) -> None:
    p = precision(golearn_cm)
    assert list(p) == ["a", "b"]
    assert p["a"] == pytest.approx(75 / 85)
    assert round(p["a"], 3) == 0.882
    assert p["b"] == pytest.approx(10 / 15)
    assert round(p["b"], 3) == 0.667
    assert precision(golearn_cm, average=None) == p


def test_golearn_recall(golearn_cm: ConfusionMatrix) -> None:
    assert recall(golearn_cm) == {"a": 0.9375, "b": 0.5}


def test_golearn_averages(golearn_cm: ConfusionMatrix) -> None:
    assert precision(golearn_cm, average="micro") == pytest.approx(0.85)
    assert recall(golearn_cm, average="micro") == pytest.approx(0.85)
    assert f1(golearn_cm, average="micro") == pytest.approx(0.85)
    macro_p = precision(golearn_cm, average="macro")
    assert macro_p == pytest.approx((75 / 85 + 10 / 15) / 2)
    assert round(macro_p, 3) == 0.775
    assert recall(golearn_cm, average="macro") == pytest.approx(0.71875)
    assert f1(golearn_cm, average="macro") == pytest.approx((150 / 165 + 20 / 35) / 2)


def test_golearn_f1_and_accuracy(golearn_cm: ConfusionMatrix) -> None:
    scores = f1(golearn_cm)
    assert round(scores["b"], 3) == 0.571
    p, r = precision(golearn_cm)["b"], recall(golearn_cm)["b"]
    assert scores["b"] == pytest.approx(2 * p * r / (p + r))
    assert accuracy(golearn_cm) == pytest.approx(0.85)


def test_invalid_average_is_rejected(golearn_cm: ConfusionMatrix) -> None:
    with pytest.raises(
        ValueError, match="average must be None, 'micro' or 'macro', got 'weighted'"
    ):
        precision(golearn_cm, average="weighted")  # type: ignore[call-overload]


def test_golearn_summary_exact(golearn_cm: ConfusionMatrix) -> None:
    assert summary(golearn_cm) == (
        "Reference Class  True Positives  False Positives  True Negatives  Precision"
        "  Recall  F1 Score\n"
        "a                            75               10              10     0.8824"
        "  0.9375    0.9091\n"
        "b                            10                5              75     0.6667"
        "  0.5000    0.5714\n"
        "Overall accuracy: 0.8500"
    )


def test_summary_rows_are_sorted_and_deterministic() -> None:
    y_true = ["virginica", "setosa", "versicolor", "setosa"]
    y_pred = ["virginica", "setosa", "setosa", "setosa"]
    with pytest.warns(UndefinedMetricWarning, match="label 'versicolor'"):
        text = summary(confusion_matrix(y_true, y_pred))
    rows = [line.split()[0] for line in text.splitlines()[1:-1]]
    assert rows == ["setosa", "versicolor", "virginica"]
    assert text.splitlines()[-1] == "Overall accuracy: 0.7500"
    with pytest.warns(UndefinedMetricWarning):
        again = summary(confusion_matrix(y_true[::-1], y_pred[::-1]))
    assert again == text


def test_zero_division_precision_is_zero_with_a_warning() -> None:
    # Nothing is ever predicted as "b": precision("b") has TP + FP == 0.
    cm = confusion_matrix(["a", "b", "b"], ["a", "a", "a"])
    with pytest.warns(UndefinedMetricWarning, match="precision is undefined for label 'b'") as rec:
        p = precision(cm)
    assert p == {"a": pytest.approx(1 / 3), "b": 0.0}
    assert len(rec) == 1
    warning = rec[0].message
    assert isinstance(warning, UndefinedMetricWarning)
    assert (warning.metric, warning.label) == ("precision", "b")
    assert rec[0].filename == __file__  # points at the caller, not at aioforest internals
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # recall is defined for both labels: no warning
        assert recall(cm) == {"a": 1.0, "b": 0.0}


def test_zero_division_recall_and_f1() -> None:
    # "c" is a known label that is neither present nor predicted.
    cm = confusion_matrix(["a", "b"], ["a", "a"], labels=["a", "b", "c"])
    with pytest.warns(UndefinedMetricWarning, match="recall is undefined for label 'c'"):
        r = recall(cm)
    assert r["c"] == 0.0
    with pytest.warns(UndefinedMetricWarning, match="f1 is undefined for label 'c'"):
        scores = f1(cm)
    assert scores == {"a": pytest.approx(2 / 3), "b": 0.0, "c": 0.0}
    with pytest.warns(UndefinedMetricWarning, match="precision is undefined") as rec:
        macro = precision(cm, average="macro")
    assert macro == pytest.approx(0.5 / 3)
    assert [w.message.label for w in rec] == ["b", "c"]  # type: ignore[union-attr]
    assert not any(math.isnan(v) for v in (*r.values(), *scores.values(), macro))


def test_f1_is_zero_without_warning_when_class_is_present_but_never_hit() -> None:
    cm = confusion_matrix(["a", "b"], ["b", "a"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f1(cm) == {"a": 0.0, "b": 0.0}


def test_empty_matrix_metrics_are_zero_with_warnings() -> None:
    cm = confusion_matrix([], [])
    with pytest.warns(UndefinedMetricWarning, match="accuracy is undefined"):
        assert accuracy(cm) == 0.0
    with pytest.warns(UndefinedMetricWarning, match="micro-averaged recall is undefined"):
        assert recall(cm, average="micro") == 0.0
    with pytest.warns(UndefinedMetricWarning, match="macro-averaged f1 is undefined"):
        assert f1(cm, average="macro") == 0.0
    assert precision(cm) == {}


def test_cross_validated_metric_mean_and_population_variance() -> None:
    cms = [
        confusion_matrix(["a"] * 4, ["a"] * 4),  # accuracy 1.0
        confusion_matrix(["a"] * 4, ["a", "a", "b", "b"]),  # 0.5
        confusion_matrix(["a"] * 4, ["a", "a", "a", "b"]),  # 0.75
    ]
    mean, var = cross_validated_metric(cms)
    assert mean == pytest.approx(0.75)
    assert var == pytest.approx(((0.25**2) * 2) / 3)  # population, not sample, variance
    macro = functools.partial(recall, average="macro")
    with pytest.warns(UndefinedMetricWarning):
        m, v = cross_validated_metric(cms, macro)
    assert m == pytest.approx((1.0 + 0.25 + 0.375) / 3)
    assert v >= 0.0


def test_cross_validated_metric_validates_inputs() -> None:
    with pytest.raises(ValueError, match="at least one"):
        cross_validated_metric([])
    cm = confusion_matrix(["a"], ["a"])
    with pytest.raises(TypeError, match=r"metric returned dict.*functools.partial"):
        cross_validated_metric([cm], precision)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"cms\[1\] is a list"):
        cross_validated_metric([cm, [1]])  # type: ignore[list-item]


def test_regression_metrics() -> None:
    y_true = [3.0, -0.5, 2.0, 7.0]
    y_pred = [2.5, 0.0, 2.0, 8.0]
    assert mean_squared_error(y_true, y_pred) == pytest.approx(0.375)
    assert r2_score(y_true, y_pred) == pytest.approx(skm.r2_score(y_true, y_pred))
    assert r2_score(y_true, y_true) == 1.0
    assert r2_score(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-3.0)


def test_r2_constant_target() -> None:
    assert r2_score([2.0, 2.0], [2.0, 2.0]) == 1.0
    with pytest.warns(UndefinedMetricWarning, match="y_true is constant"):
        assert r2_score([2.0, 2.0], [1.0, 3.0]) == 0.0


@pytest.mark.parametrize(
    ("y_true", "y_pred", "pattern"),
    [
        ([1.0, 2.0], [1.0], r"len\(y_true\)=2 and len\(y_pred\)=1"),
        ([], [], "empty"),
        ([1.0, float("nan")], [1.0, 1.0], r"y_true must be finite; y_true\[1\] is nan"),
        ([1.0], [float("inf")], r"y_pred\[0\] is inf"),
        (["a"], [1.0], "y_true must be numeric"),
        ([[1.0]], [[1.0]], r"y_true must be 1-D"),
    ],
)
def test_regression_metrics_reject_bad_input(
    y_true: list[object], y_pred: list[object], pattern: str
) -> None:
    for metric in (r2_score, mean_squared_error):
        with pytest.raises(ValueError, match=pattern):
            metric(y_true, y_pred)  # type: ignore[arg-type]


labels_st = st.sampled_from([0, 1, 2, 3])


@st.composite
def label_pairs(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    y_true = draw(st.lists(labels_st, min_size=1, max_size=50))
    y_pred = draw(st.lists(labels_st, min_size=len(y_true), max_size=len(y_true)))
    return y_true, y_pred


@given(label_pairs())
def test_accuracy_is_trace_over_n_and_equals_micro_averages(
    pair: tuple[list[int], list[int]],
) -> None:
    y_true, y_pred = pair
    cm = confusion_matrix(y_true, y_pred)
    n = len(y_true)
    assert cm.total == n
    assert accuracy(cm) == np.trace(cm.counts) / n
    assert precision(cm, average="micro") == pytest.approx(accuracy(cm))
    assert recall(cm, average="micro") == pytest.approx(accuracy(cm))
    assert f1(cm, average="micro") == pytest.approx(accuracy(cm))
    for label in cm.labels:
        parts = (
            true_positives(cm, label),
            false_positives(cm, label),
            false_negatives(cm, label),
            true_negatives(cm, label),
        )
        assert min(parts) >= 0
        assert sum(parts) == n


@settings(max_examples=50, deadline=None)  # four scikit-learn calls per example
@given(label_pairs())
def test_per_label_metrics_match_scikit_learn(pair: tuple[list[int], list[int]]) -> None:
    y_true, y_pred = pair
    cm = confusion_matrix(y_true, y_pred)
    labels = list(cm.labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        ours = (precision(cm), recall(cm), f1(cm))
        macro = (
            precision(cm, average="macro"),
            recall(cm, average="macro"),
            f1(cm, average="macro"),
        )
    with warnings.catch_warnings():
        # scikit-learn warns when only one label occurs, which is a legitimate case here.
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        theirs = (
            skm.precision_score(y_true, y_pred, labels=labels, average=None, zero_division=0),
            skm.recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0),
            skm.f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0),
        )
        sk_cm = skm.confusion_matrix(y_true, y_pred, labels=labels)
    for mine, ref in zip(ours, theirs, strict=True):
        assert list(mine.values()) == pytest.approx(list(ref))
    for mine_avg, ref_avg in zip(macro, theirs, strict=True):
        assert mine_avg == pytest.approx(float(np.mean(ref_avg)))
    assert cm.counts.tolist() == sk_cm.tolist()
