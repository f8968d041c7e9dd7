"""Random forests on a Dask cluster: ``forest.fit(X, y, cluster=client, mode=...)``.

``pip install aioforest[dask]``; dask is imported only when a fit or a prediction uses it.

* ``forest.fit(X, y, cluster=client, mode="model" | "data")`` and ``await
  forest.fit_async(...)`` (``client`` a ``distributed.Client``, synchronous or
  asynchronous, or a :class:`DaskCluster` with options). ``X`` and ``y`` are dask arrays,
  or a dask DataFrame and Series; numpy and pandas inputs are scattered once.
  ``mode="model"``: the binned data on each worker once, batches of trees as tasks.
  ``mode="data"``: the partitions stay where dask holds them and the one growth driver
  sums their histograms (:class:`DaskRows`). Either way the forest is a local fit's, bit
  for bit, for any number of workers and partitions, and after workers die.
* ``forest.predict(dask_X)`` / ``predict_proba``: a dask array computed on the workers,
  the model sent once (:func:`predict_collection`).
* :class:`DaskFitError`: the cluster cannot finish the fit (no progress within
  ``DaskCluster.timeout``, or a task kept failing).
"""

from ..ensemble import register_cluster_backend
from ..tree import set_collection_predictor
from ._data_mode import DaskRows
from ._fit import DaskBackend, fit_on_dask, is_dask_client
from ._inputs import is_dask_collection
from ._predict import predict_collection
from ._session import DaskCluster, DaskFitError

register_cluster_backend(DaskBackend())
set_collection_predictor(predict_collection)

__all__ = [
    "DaskBackend",
    "DaskCluster",
    "DaskFitError",
    "DaskRows",
    "fit_on_dask",
    "is_dask_client",
    "is_dask_collection",
    "predict_collection",
]
