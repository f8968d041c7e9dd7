"""Random forests: ``RandomForestClassifier`` and ``RandomForestRegressor``.

Fitting bins the data once, then fits trees in a process pool (``n_jobs`` processes) that reads
the binned matrix from shared memory. Tree ``i`` depends only on (data, parameters,
``random_state``, ``i``), so the forest is bit-identical whatever ``n_jobs`` is, whichever order
trees finish in, and whether it was fitted here, on a cluster, or resumed from a checkpoint.
Every fit, local or on a cluster, goes through the fit protocol (``forest.fit_job``, which
returns a :class:`~aioforest.ensemble.FitJob`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import threading
import time
import warnings
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import wait
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .._base import BaseEstimator
from .._exact import exact_sum, r2_from_sums, squared_deviations, to_float
from .._validation import Prepared, check_int, prepare, resolve_seed
from ..data import Binner, Bins
from ..evaluation import accuracy_score
from ..tree import (
    GROWTH_VERSION,
    ClassifierMixin,
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    FlatForest,
    ForestPlan,
    RegressorMixin,
    TreeArrays,
    TreeModel,
    out_of_bag_votes,
    plan_for,
    register_model,
    row_keys,
)
from ._fit_job import FitJob
from ._local_fit import fit_local, iter_fit_local
from ._pool import SharedArrays, effective_n_jobs, get_executor

__all__ = ["FitProgress", "RandomForestClassifier", "RandomForestRegressor"]

#: Below this many (row, tree) pairs a prediction stays in this process: shipping the rows
#: to the pool costs more than it saves.
PARALLEL_PREDICT_PAIRS = 400_000

_SHARED: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()  # predict_async builds it in a thread: once, not twice
#: predict_async predicts up to this many rows on the event loop itself (a single row takes
#: ~0.2 ms; handing it to a thread would cost more than that).
LOOP_PREDICT_ROWS = 64


class ClusterBackend(Protocol):
    """A cluster that ``fit(cluster=...)`` / ``fit_async(cluster=...)`` can run on besides
    ours (the Dask backend registers one: the packages above the estimators plug in here,
    so that nothing imports them unless they are used)."""

    def accepts(self, cluster: object) -> bool: ...

    def fit(self, estimator: Any, X: Any, y: Any, sample_weight: Any, *, cluster: Any,
            mode: str, on_progress: Callable[[FitProgress], object] | None) -> Any: ...

    async def fit_async(self, estimator: Any, X: Any, y: Any, sample_weight: Any, *,
                        cluster: Any, mode: str,
                        on_progress: Callable[[FitProgress], object] | None) -> Any: ...


_BACKENDS: list[ClusterBackend] = []


def register_cluster_backend(backend: ClusterBackend) -> None:
    """Let ``fit(cluster=c)`` run on ``backend`` whenever ``backend.accepts(c)``."""
    if backend not in _BACKENDS:
        _BACKENDS.append(backend)


def _backend_for(cluster: object) -> ClusterBackend | None:
    return next((b for b in _BACKENDS if b.accepts(cluster)), None)


async def _progress_of(
    fit: Callable[[Callable[[FitProgress], object]], Awaitable[Any]],
) -> AsyncIterator[FitProgress]:
    """Run ``fit(on_progress)`` and yield its progress reports as they come; cancelling
    the consumer cancels the fit."""
    queue: asyncio.Queue[FitProgress | None] = asyncio.Queue()
    task = asyncio.ensure_future(fit(queue.put_nowait))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (progress := await queue.get()) is not None:
            yield progress
        await task
    finally:
        if not task.done():
            task.cancel()


@dataclass(frozen=True)
class FitProgress:
    """One tree finished: which one (and the tree itself), how many are done, the pace."""

    index: int
    done: int
    total: int
    elapsed: float
    tree: TreeArrays | None = None

    @property
    def trees_per_second(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else math.inf

    @property
    def eta(self) -> float:
        """Seconds left at the pace so far."""
        rate = self.trees_per_second
        return (self.total - self.done) / rate if rate > 0 else math.inf


class _BaseForest(BaseEstimator, TreeModel):
    _classification: bool
    n_estimators: int
    n_jobs: int | None
    warm_start: bool
    oob_score: bool
    bootstrap: bool
    max_samples: Any
    feature_subspace: Any
    max_bins: int
    random_state: Any

    # --- fitting -----------------------------------------------------------------------
    def fit_job(self, X: object, y: object = None, sample_weight: object = None) -> FitJob:
        """Validate the data and parameters and resolve the plan: the fit, ready to run.

        This is the fit protocol (:class:`~aioforest.ensemble.FitJob`) that ``fit``, the
        asynchronous fits and the cluster all use. With ``warm_start=True`` on a fitted
        forest the job adds trees ``len(trees_)`` to ``n_estimators - 1``, reusing the
        forest's bins; when there is no new tree to fit it warns (here, once) and its
        :attr:`~aioforest.ensemble.FitJob.indices` are empty.
        """
        self._check_oob()
        return self.job_for(prepare(X, y, sample_weight, classification=self._classification))

    def _check_oob(self) -> None:
        if self.oob_score and not self.bootstrap:
            raise ValueError("oob_score=True needs bootstrap=True")

    def job_for(self, prep: Prepared) -> FitJob:
        """The fit of already prepared data (see :meth:`fit_job`); a cluster whose rows
        stay on its workers passes :meth:`Prepared.described` data."""
        self._check_oob()
        n_estimators = check_int("n_estimators", self.n_estimators, 1)
        warm = self.warm_start and hasattr(self, "trees_")
        if warm:
            self._check_warm_start(prep, n_estimators)
        seed = self._seed_ if warm else resolve_seed(self.random_state)
        plan = plan_for(
            self, prep, seed=seed, bootstrap=self.bootstrap, max_samples=self.max_samples,
            feature_subspace=self.feature_subspace,
        )
        if warm and plan != self.plan_:
            raise ValueError("warm_start fit cannot change parameters other than n_estimators")
        first = len(self.trees_) if warm else 0
        if first == n_estimators:
            warnings.warn(
                "warm_start fit without a larger n_estimators fits no new tree",
                UserWarning, stacklevel=4,
            )
        return FitJob(
            prep, plan, range(first, n_estimators), binner=Binner(self.max_bins),
            installer=self._install, previous=self.trees_ if warm else (),
            reuse_bins=self.bins_ if warm else None, keep_rows=self.oob_score,
        )

    def _check_warm_start(self, prep: Prepared, n_estimators: int) -> None:
        growth = getattr(self, "_growth_version_", GROWTH_VERSION)
        if growth != GROWTH_VERSION:
            raise ValueError(
                f"warm_start cannot add trees to this forest: it was grown by the rules of "
                f"format {growth} (aioforest 0.2, another bootstrap), this aioforest grows "
                f"by format {GROWTH_VERSION}; refit it from scratch"
            )
        if n_estimators < len(self.trees_):
            raise ValueError(
                f"n_estimators={n_estimators} must be >= the {len(self.trees_)} trees "
                "already fitted when warm_start=True"
            )
        if prep.X.shape[1] != self.n_features_in_ or prep.features != self.features_:
            raise ValueError("warm_start fit needs data with the same features as before")
        if prep.classes is not None and not np.array_equal(prep.classes, self.classes_):
            raise ValueError("warm_start fit needs the same classes as before")

    def fit(
        self, X: object, y: object = None, sample_weight: object = None, *,
        cluster: Any = None, mode: str = "model",
        on_progress: Callable[[FitProgress], object] | None = None,
    ) -> Any:
        """Fit the forest; trees are fitted in ``n_jobs`` processes.

        With ``cluster`` a ``distributed.Client`` (or ``aioforest.dask.DaskCluster``), fit on
        that Dask cluster: ``mode="model"`` (whole trees, the binned data on each worker)
        or ``"data"`` (histograms summed over the partitions, which stay where dask holds
        them). Either forest equals this local fit's, bit for bit. Our own ``Master`` and
        ``LocalCluster`` run on an event loop: use :meth:`fit_async` with them.
        """
        if cluster is not None:
            backend = _backend_for(cluster)
            if backend is None:
                raise TypeError(
                    f"fit(cluster=...) takes a distributed.Client; a {type(cluster).__name__} "
                    "runs on an event loop: use `await forest.fit_async(X, y, cluster=...)`")
            return backend.fit(self, X, y, sample_weight, cluster=cluster, mode=mode,
                               on_progress=on_progress)
        job = self.fit_job(X, y, sample_weight)
        if job.indices:
            job.install(fit_local(job, self.n_jobs))
        return self

    async def iter_fit_async(
        self, X: object, y: object = None, sample_weight: object = None, *,
        cluster: Any = None, mode: str = "model",
    ) -> AsyncIterator[FitProgress]:
        """Fit without blocking the event loop, yielding progress as each tree finishes.

        Binning and tree fitting run in the process pool (or on ``cluster``, as in
        :meth:`fit_async`); the loop only schedules. The forest is complete (and fitted
        attributes set) once the iterator is exhausted. Cancelling the consumer cancels the
        queued tasks and leaves the estimator as it was.
        """
        if cluster is not None:
            async for progress in _progress_of(lambda report: self.fit_async(
                    X, y, sample_weight, cluster=cluster, mode=mode, on_progress=report)):
                yield progress
            return
        job = self.fit_job(X, y, sample_weight)
        if not job.indices:
            return
        t0 = time.perf_counter()
        trees: dict[int, TreeArrays] = {}
        async with contextlib.aclosing(iter_fit_local(job, self.n_jobs)) as fitted:
            async for i, tree in fitted:
                trees[i] = tree
                yield FitProgress(i, len(trees), len(job.indices), time.perf_counter() - t0, tree)
        await asyncio.to_thread(job.install, trees)  # O(model): builds the prediction table

    async def fit_async(
        self,
        X: object,
        y: object = None,
        sample_weight: object = None,
        *,
        cluster: Any = None,
        mode: str = "model",
        on_progress: Callable[[FitProgress], object] | None = None,
    ) -> Any:
        """``fit`` without blocking the event loop; with ``cluster``, fit on a cluster: our
        :class:`~aioforest.cluster.Master` or :class:`~aioforest.cluster.LocalCluster`
        (any of its modes), or a ``distributed.Client``, synchronous or asynchronous
        (``mode="model"`` or ``"data"``)."""
        if cluster is not None:
            backend = _backend_for(cluster)
            if backend is not None:
                return await backend.fit_async(self, X, y, sample_weight, cluster=cluster,
                                               mode=mode, on_progress=on_progress)
            master = getattr(cluster, "master", cluster)  # a LocalCluster's own master
            return await master.fit(self, X, y, sample_weight=sample_weight, mode=mode,
                                    on_progress=on_progress)
        async for progress in self.iter_fit_async(X, y, sample_weight):
            if on_progress is not None:
                on_progress(progress)
        return self

    def _install(
        self, prep: Prepared, plan: ForestPlan, bins: Bins, trees: list[TreeArrays]
    ) -> None:
        """What :meth:`FitJob.install` calls: the fitted state, then out-of-bag scores."""
        self.set_fitted_trees(prep, plan, bins, trees)
        if self.oob_score and not prep.remote:  # else: where the rows live
            self._compute_oob(prep)

    def set_fitted_trees(
        self, prep: Prepared, plan: ForestPlan, bins: Bins, trees: list[TreeArrays]
    ) -> None:
        """Install fitted trees (in tree-index order) and the state that goes with them."""
        for tree in trees:
            tree.compact(bins)  # keep only what the bins cannot rebuild
        self.trees_ = trees
        self.bins_ = bins
        self.plan_ = plan
        self._seed_ = plan.seed
        self._growth_version_ = GROWTH_VERSION
        self.features_ = prep.features
        self.n_features_in_ = prep.X.shape[1]
        if prep.feature_names is not None:
            self.feature_names_in_ = np.array(prep.feature_names, dtype=object)
        if prep.classes is not None:
            self.classes_ = prep.classes
        self._estimators_cache: list[Any] | None = None
        # Flatten the trees for prediction now, as part of fitting (scikit-learn's fit also
        # leaves its trees ready to predict), rather than inside the first predict call.
        self._flat_forest()

    @property
    def estimators_(self) -> list[Any]:
        """The trees as single-tree estimators (sharing this forest's bins and schema)."""
        self._check_is_fitted()
        cache = getattr(self, "_estimators_cache", None)
        if cache is None or len(cache) != len(self.trees_):
            cache = [self._tree_estimator(t) for t in self.trees_]
            self._estimators_cache = cache
        return cache

    def _tree_estimator(self, tree: TreeArrays) -> Any:
        est: Any
        if self._classification:
            est = DecisionTreeClassifier(
                criterion=self.plan_.criterion, max_depth=getattr(self, "max_depth", None),
                min_samples_split=getattr(self, "min_samples_split", 2),
                min_samples_leaf=getattr(self, "min_samples_leaf", 1),
                max_features=getattr(self, "max_features", None), max_bins=self.max_bins,
            )
            est.classes_ = self.classes_
        else:
            est = DecisionTreeRegressor(
                max_depth=getattr(self, "max_depth", None),
                min_samples_split=getattr(self, "min_samples_split", 2),
                min_samples_leaf=getattr(self, "min_samples_leaf", 1),
                max_features=getattr(self, "max_features", None), max_bins=self.max_bins,
            )
        est.tree_ = tree
        est.trees_ = [tree]
        est.bins_ = self.bins_
        est.features_ = self.features_
        est.n_features_in_ = self.n_features_in_
        return est

    def _compute_oob(self, prep: Prepared) -> None:
        n = prep.X.shape[0]
        flat = self._flat_forest()
        acc, seen = out_of_bag_votes(self.plan_, flat.value, flat.leaves(prep.X),
                                     row_keys(np.arange(n)), n)
        has = seen > 0
        if not has.all():
            warnings.warn(
                f"{int((~has).sum())} samples were in-bag for every tree; their out-of-bag "
                "estimate is left out of oob_score_",
                UserWarning,
                stacklevel=5,  # fit -> FitJob.install -> _install -> here
            )
        pred = acc[has] / seen[has, None]
        if self._classification:
            self.oob_decision_function_ = np.where(
                has[:, None], acc / np.maximum(seen, 1)[:, None], np.nan
            )
            self.oob_score_ = accuracy_score(prep.y[has], np.argmax(pred, axis=1))
        else:
            self.oob_prediction_ = np.where(has, acc[:, 0] / np.maximum(seen, 1), np.nan)
            # No sample with an estimate: nothing to score (r2_score needs one). Exact
            # sums: the score of rows cut over workers is this one, bit for bit.
            y = np.asarray(prep.y[has], dtype=np.float64)
            mean = to_float(exact_sum(y), max(y.size, 1))
            self.oob_score_ = r2_from_sums(squared_deviations(y, pred[:, 0]),
                                           squared_deviations(y, mean)) if has.any() else 0.0

    # --- async prediction ------------------------------------------------------------------
    def _build_flat_forest(self) -> FlatForest:
        """With pool processes to predict in, the prediction table is built in shared
        memory: they map it, and no second copy of it is made for them."""
        if effective_n_jobs(self.n_jobs) <= 1:
            return super()._build_flat_forest()
        from ._shared_model import SharedModel

        segments = SharedArrays({})
        try:
            flat = FlatForest(self.trees_, self.bins_, allocate=segments.allocate)
        except BaseException:
            segments.close()
            raise
        self._publish(SharedModel(flat, id(self.trees_), segments))
        return flat

    def _publish(self, shared: Any) -> Any:
        with _SHARED_LOCK:
            old = _SHARED.get(self)
            if old is not None and old is not shared:
                old.close()
            _SHARED[self] = shared
        return shared

    def _shared_model(self) -> Any:
        """This fitted model in shared memory for pool processes (cached outside __dict__)."""
        from ._shared_model import SharedModel

        flat = self._flat_forest()
        key = id(self.trees_)
        with _SHARED_LOCK:
            shared = _SHARED.get(self)
            if shared is not None and shared.key == key:
                return shared
        # The table was built in private memory (n_jobs was 1 then): copy it once.
        return self._publish(SharedModel(flat, key))

    def _mean_value(self, X: object) -> npt.NDArray[np.float64]:
        """Mean leaf values; a large batch is split across the ``n_jobs`` pool processes."""
        Xe = self._encode(X)
        n_workers = min(effective_n_jobs(self.n_jobs), max(Xe.shape[0] // 2048, 1))
        if n_workers == 1 or Xe.shape[0] * len(self.trees_) < PARALLEL_PREDICT_PAIRS:
            return self._flat_forest().mean_value(Xe)
        shared = self._shared_model()
        executor = get_executor(effective_n_jobs(self.n_jobs))
        bounds = np.linspace(0, Xe.shape[0], n_workers + 1).astype(int)
        with SharedArrays({"X": Xe}) as xs:
            futures = [
                executor.submit(shared.task_rows, xs.specs["X"], int(lo), int(hi))
                for lo, hi in itertools.pairwise(bounds)
            ]
            try:
                parts = [f.result() for f in futures]
            finally:
                wait(futures)  # the segment is unlinked only once no task reads it
        return np.concatenate(parts, axis=0)

    async def _mean_value_async(
        self, X: object, block_rows: int = 16384
    ) -> npt.NDArray[np.float64]:
        """Predict in row blocks on the process pool; the event loop only schedules.

        Encoding the rows, building the flat and the shared model (on first use) and
        joining the blocks are O(rows) or O(model), so they run in a thread. Up to
        ``LOOP_PREDICT_ROWS`` rows of a model already flattened are predicted on the loop:
        less work than any hand-off.
        """
        n_rows = _row_count(X)
        if n_rows is not None and n_rows <= LOOP_PREDICT_ROWS and self._flat_forest_ready():
            return self._flat_forest().mean_value(self._encode(X))
        Xe = await asyncio.to_thread(self._encode, X)
        if Xe.shape[0] <= block_rows // 8:  # small: a thread beats a pool round trip
            return await asyncio.to_thread(lambda: self._flat_forest().mean_value(Xe))
        shared = await asyncio.to_thread(self._shared_model)
        loop = asyncio.get_running_loop()
        executor = get_executor(max(effective_n_jobs(self.n_jobs), 1))
        futures = [
            loop.run_in_executor(executor, shared.task, Xe[lo : lo + block_rows])
            for lo in range(0, Xe.shape[0], block_rows)
        ]
        parts = await asyncio.gather(*futures)
        return await asyncio.to_thread(np.concatenate, parts, axis=0)


def _row_count(X: object) -> int | None:
    """Rows of ``X`` without converting it (None if that would take work)."""
    shape = getattr(X, "shape", None)
    if isinstance(shape, tuple) and len(shape) == 2 and isinstance(shape[0], int):
        return shape[0]
    return len(X) if isinstance(X, list) else None


@register_model
class RandomForestClassifier(_BaseForest, ClassifierMixin):
    """A random forest of histogram classification trees.

    Parameters follow scikit-learn's ``RandomForestClassifier``; in addition
    ``feature_subspace`` draws a random feature subset once per tree (GoLearn's random
    forest), ``max_bins`` sets the histogram resolution.
    """

    _classification = True

    def __init__(
        self,
        n_estimators: int = 100,
        *,
        criterion: str = "gini",
        max_depth: int | None = None,
        min_samples_split: int | float = 2,
        min_samples_leaf: int | float = 1,
        min_weight_fraction_leaf: float = 0.0,
        min_impurity_decrease: float = 0.0,
        max_features: int | float | str | None = "sqrt",
        feature_subspace: int | float | None = None,
        bootstrap: bool = True,
        max_samples: int | float | None = None,
        oob_score: bool = False,
        class_weight: dict[Any, float] | str | None = None,
        max_bins: int = 255,
        n_jobs: int | None = None,
        random_state: int | None = None,
        warm_start: bool = False,
    ) -> None:
        self.n_estimators = n_estimators
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.min_weight_fraction_leaf = min_weight_fraction_leaf
        self.min_impurity_decrease = min_impurity_decrease
        self.max_features = max_features
        self.feature_subspace = feature_subspace
        self.bootstrap = bootstrap
        self.max_samples = max_samples
        self.oob_score = oob_score
        self.class_weight = class_weight
        self.max_bins = max_bins
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.warm_start = warm_start

    async def predict_proba_async(self, X: object) -> npt.NDArray[np.float64]:
        """``predict_proba`` computed on the process pool, in row blocks."""
        return await self._mean_value_async(X)

    async def predict_async(self, X: object) -> npt.NDArray[Any]:
        """``predict`` computed on the process pool, in row blocks."""
        proba = await self._mean_value_async(X)
        labels: npt.NDArray[Any] = self.classes_[np.argmax(proba, axis=1)]
        return labels


@register_model
class RandomForestRegressor(_BaseForest, RegressorMixin):
    """A random forest of histogram regression trees (squared error)."""

    _classification = False

    def __init__(
        self,
        n_estimators: int = 100,
        *,
        criterion: str = "squared_error",
        max_depth: int | None = None,
        min_samples_split: int | float = 2,
        min_samples_leaf: int | float = 1,
        min_weight_fraction_leaf: float = 0.0,
        min_impurity_decrease: float = 0.0,
        max_features: int | float | str | None = 1.0,
        feature_subspace: int | float | None = None,
        bootstrap: bool = True,
        max_samples: int | float | None = None,
        oob_score: bool = False,
        max_bins: int = 255,
        n_jobs: int | None = None,
        random_state: int | None = None,
        warm_start: bool = False,
    ) -> None:
        self.n_estimators = n_estimators
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.min_weight_fraction_leaf = min_weight_fraction_leaf
        self.min_impurity_decrease = min_impurity_decrease
        self.max_features = max_features
        self.feature_subspace = feature_subspace
        self.bootstrap = bootstrap
        self.max_samples = max_samples
        self.oob_score = oob_score
        self.max_bins = max_bins
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.warm_start = warm_start

    class_weight = None

    async def predict_async(self, X: object) -> npt.NDArray[np.float64]:
        """``predict`` computed on the process pool, in row blocks."""
        return (await self._mean_value_async(X))[:, 0]
