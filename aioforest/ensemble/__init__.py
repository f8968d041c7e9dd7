"""Ensembles of trees: random forests and bagging, fitted on a process pool.

:class:`FitJob` is the fit protocol every runner of a forest's tasks uses (the local pool,
the cluster): ``job = forest.fit_job(X, y)``, then :meth:`FitJob.bin`, :meth:`FitJob.tasks`
(each a :class:`FitTask` to run anywhere) and :meth:`FitJob.install`.
"""

from ._bagging import BaggingClassifier
from ._fit_job import FitJob, FitTask, SupportsFitJob
from ._forest import FitProgress, RandomForestClassifier, RandomForestRegressor

__all__ = [
    "BaggingClassifier",
    "FitJob",
    "FitProgress",
    "FitTask",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "SupportsFitJob",
]
