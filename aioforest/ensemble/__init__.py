"""Ensembles of trees: random forests and bagging, fitted on a process pool."""

from ._bagging import BaggingClassifier
from ._forest import FitProgress, RandomForestClassifier, RandomForestRegressor

__all__ = ["BaggingClassifier", "FitProgress", "RandomForestClassifier", "RandomForestRegressor"]
