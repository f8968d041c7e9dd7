"""Model evaluation: confusion matrices, classification and regression metrics, cross-validation.

A deterministic, NaN-free take on GoLearn's ``evaluation`` package::

    cm = confusion_matrix(y_true, y_pred)
    print(summary(cm))
    cms = cross_validate(estimator, dataset, folds=5, random_state=0)
    mean, variance = cross_validated_metric(cms, accuracy)
"""

from ._confusion import ConfusionMatrix, confusion_matrix, sort_labels
from ._cross_validation import SupportsFitPredict, clone, clone_estimator, cross_validate, cv_inputs
from ._metrics import (
    Average,
    UndefinedMetricWarning,
    accuracy,
    accuracy_score,
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

__all__ = [
    "Average",
    "ConfusionMatrix",
    "SupportsFitPredict",
    "UndefinedMetricWarning",
    "accuracy",
    "accuracy_score",
    "clone",
    "clone_estimator",
    "confusion_matrix",
    "cross_validate",
    "cross_validated_metric",
    "cv_inputs",
    "f1",
    "false_negatives",
    "false_positives",
    "mean_squared_error",
    "precision",
    "r2_score",
    "recall",
    "sort_labels",
    "summary",
    "true_negatives",
    "true_positives",
]
