"""aioforest: Go-style concurrency for asyncio, and deterministic random forests on a cluster.

The main names are importable from here; each concern lives in its own package:
``aioforest.csp`` (channels, select, wait groups), ``aioforest.data`` (datasets, readers,
splits, binning), ``aioforest.tree`` and ``aioforest.ensemble`` (estimators),
``aioforest.evaluation`` (metrics, cross-validation), ``aioforest.persistence`` (model files),
``aioforest.cluster`` (our TCP master and workers) and ``aioforest.dask`` (fits and
predictions on a Dask cluster: ``forest.fit(X, y, cluster=client)``).
"""

from . import dask as _dask_backend  # noqa: F401 - registers fit(cluster=client)
from ._version import __version__
from .data import (
    DataError,
    Dataset,
    KFold,
    Partitions,
    StratifiedKFold,
    read_arff,
    read_csv,
    split_rows,
    train_test_split,
)
from .ensemble import (
    BaggingClassifier,
    FitProgress,
    RandomForestClassifier,
    RandomForestRegressor,
)
from .evaluation import (
    accuracy,
    confusion_matrix,
    cross_validate,
    cross_validated_metric,
    summary,
)
from .persistence import FormatError, load
from .tree import DecisionTreeClassifier, DecisionTreeRegressor, export_text

__all__ = [
    "BaggingClassifier",
    "DataError",
    "Dataset",
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "FitProgress",
    "FormatError",
    "KFold",
    "Partitions",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "StratifiedKFold",
    "__version__",
    "accuracy",
    "confusion_matrix",
    "cross_validate",
    "cross_validated_metric",
    "export_text",
    "load",
    "read_arff",
    "read_csv",
    "split_rows",
    "summary",
    "train_test_split",
]
