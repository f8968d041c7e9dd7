"""The fit on Dask, from ``forest.fit(X, y, cluster=client, mode=...)``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from ..ensemble import FitProgress
from ._data_mode import grow_on_dask, oob_score_on_dask
from ._inputs import bin_rows, learn_bins, load
from ._model_mode import fit_trees_on_dask
from ._session import DaskCluster, DaskSession

__all__ = ["DaskBackend", "is_dask_client"]

MODES = ("model", "data")


def is_dask_client(obj: object) -> bool:
    """Whether ``obj`` is a ``distributed.Client`` (or a :class:`DaskCluster`), without
    importing dask."""
    if isinstance(obj, DaskCluster):
        return True
    return any(c.__name__ == "Client" and c.__module__.startswith("distributed")
               for c in type(obj).__mro__)


def fit_on_dask(
    estimator: Any, X: Any, y: Any, sample_weight: Any, *, cluster: Any, mode: str,
    on_progress: Callable[[FitProgress], object] | None = None,
    stop: threading.Event | None = None,
) -> Any:
    """Fit ``estimator`` on the Dask cluster of ``cluster`` (a client or a
    :class:`DaskCluster`), blocking this thread; the fitted state is a local fit's."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} on Dask, got {mode!r}")
    options = cluster if isinstance(cluster, DaskCluster) else DaskCluster(cluster)
    session = DaskSession(options, stop if stop is not None else threading.Event())
    if estimator.oob_score and not estimator.bootstrap:
        raise ValueError("oob_score=True needs bootstrap=True")
    data = load(session, X, y, sample_weight, estimator._classification)
    try:
        if mode == "data" and data.use_weights:
            raise ValueError("mode='data' does not take sample_weight; use mode='model'")
        job = estimator.job_for(data.prepared)
        if not job.indices:
            return estimator
        bins = job.bins if job.warm else learn_bins(session, data, job.binner.max_bins)
        job.use_bins(bins)
        bin_rows(session, data, bins)
        if mode == "model":
            trees = fit_trees_on_dask(session, job, data, on_progress)
            stats: dict[str, Any] = {}
        else:
            trees, stats = grow_on_dask(session, job, data, on_progress)
        job.install(trees)
        if estimator.oob_score:
            estimator.oob_score_ = oob_score_on_dask(session, estimator, data)
        estimator.dask_stats_ = {**stats, "mode": mode, "n_rows": data.n_total,
                                 "partitions": len(data.raw), "tasks": session.tasks,
                                 "wait_seconds": session.waits}
        return estimator
    finally:
        _release(data)


def _release(data: Any) -> None:
    for futures in (data.encoded, data.binned or [], *data.raw):
        for future in futures:
            if future is not None and hasattr(future, "release"):
                future.release()


class DaskBackend:
    """What ``forest.fit(..., cluster=client)`` and ``fit_async`` call for a Dask client
    (registered with :func:`aioforest.ensemble.register_cluster_backend`)."""

    @staticmethod
    def accepts(cluster: object) -> bool:
        return is_dask_client(cluster)

    @staticmethod
    def fit(estimator: Any, X: Any, y: Any, sample_weight: Any, *, cluster: Any, mode: str,
            on_progress: Callable[[FitProgress], object] | None) -> Any:
        client = cluster.client if isinstance(cluster, DaskCluster) else cluster
        if getattr(client, "asynchronous", False):
            raise TypeError("this distributed.Client is asynchronous: use "
                            "`await forest.fit_async(X, y, cluster=client)`")
        return fit_on_dask(estimator, X, y, sample_weight, cluster=cluster, mode=mode,
                           on_progress=on_progress)

    @staticmethod
    async def fit_async(estimator: Any, X: Any, y: Any, sample_weight: Any, *, cluster: Any,
                        mode: str, on_progress: Callable[[FitProgress], object] | None
                        ) -> Any:
        # The fit blocks a thread, never the loop; progress comes back to the loop.
        loop = asyncio.get_running_loop()
        stop = threading.Event()

        def report(progress: FitProgress) -> None:
            if on_progress is not None:
                loop.call_soon_threadsafe(on_progress, progress)

        try:
            return await asyncio.to_thread(
                fit_on_dask, estimator, X, y, sample_weight, cluster=cluster, mode=mode,
                on_progress=report, stop=stop)
        except asyncio.CancelledError:
            stop.set()  # the thread stops at its next task; the estimator stays unfitted
            raise
