"""Ensembles of trees: random forests and bagging, fitted on a process pool.

:class:`FitJob` is the fit protocol every runner of a forest's tasks uses (the local pool,
the cluster): ``job = forest.fit_job(X, y)``, then :meth:`FitJob.bin`, :meth:`FitJob.tasks`
(each a :class:`FitTask` to run anywhere) and :meth:`FitJob.install`.

For runners of tasks in other processes (the cluster's workers): :class:`SharedArrays`
(arrays in shared memory), :func:`get_executor` / :func:`effective_n_jobs` (the process
pool), :func:`fit_task` (a task on shared codes) and :func:`warm_up`.

For backends above the estimators (Dask): :func:`register_cluster_backend` lets
``fit(cluster=...)`` run on a :class:`ClusterBackend`.
"""

from ._bagging import BaggingClassifier
from ._fit_job import FitJob, FitTask, SupportsFitJob, trees_per_task
from ._forest import (
    ClusterBackend,
    FitProgress,
    RandomForestClassifier,
    RandomForestRegressor,
    register_cluster_backend,
)
from ._pool import SharedArrays, effective_n_jobs, get_executor
from ._tasks import fit_task, warm_up

__all__ = [
    "BaggingClassifier",
    "ClusterBackend",
    "FitJob",
    "FitProgress",
    "FitTask",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "SharedArrays",
    "SupportsFitJob",
    "effective_n_jobs",
    "fit_task",
    "get_executor",
    "register_cluster_backend",
    "trees_per_task",
    "warm_up",
]
