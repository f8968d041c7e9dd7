"""Random forests: ``RandomForestClassifier`` and ``RandomForestRegressor``.

Fitting bins the data once, then fits trees in a process pool (``n_jobs`` processes) that reads
the binned matrix from shared memory. Tree ``i`` depends only on (data, parameters,
``random_state``, ``i``), so the forest is bit-identical whatever ``n_jobs`` is, whichever order
trees finish in, and whether it was fitted here, on a cluster, or resumed from a checkpoint.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import math
import time
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._base import BaseEstimator
from .._validation import Prepared, check_int, prepare, resolve_seed
from ..data._binning import BinnedData, Binner, transform
from ..evaluation import accuracy_score, r2_score
from ..tree import register_model
from ..tree._arrays import TreeArrays
from ..tree._classes import (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    plan_for,
    strip_codes,
)
from ..tree._model import ClassifierMixin, RegressorMixin, TreeModel
from ..tree._plan import BATCH_INSTANCES, ForestPlan, fit_trees, in_bag_counts
from ._pool import SharedArrays, effective_n_jobs, get_executor
from ._tasks import bin_task, fit_task

__all__ = ["FitProgress", "RandomForestClassifier", "RandomForestRegressor"]

#: Below this many (row, tree) pairs a prediction stays in this process: shipping the rows
#: to the pool costs more than it saves.
PARALLEL_PREDICT_PAIRS = 400_000

_SHARED: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


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


@dataclass
class _FitJob:
    """A fit in progress: the prepared data, its bins, the plan and the trees to fit."""

    prep: Prepared
    plan: ForestPlan
    indices: list[int]
    reuse_bins: BinnedData | None

    def fits_nothing(self, stacklevel: int) -> bool:
        """Whether no tree is left to fit (a warm start without more trees); warns if so.

        ``stacklevel`` is that of the caller's own ``warnings.warn``: the warning names the
        caller's caller.
        """
        if self.indices:
            return False
        warnings.warn(
            "warm_start fit without a larger n_estimators fits no new tree",
            UserWarning, stacklevel=stacklevel + 1,
        )
        return True


def _fit_call(
    shared: SharedArrays, bins: BinnedData, plan: ForestPlan
) -> Callable[[list[int]], list[dict[str, np.ndarray[Any, Any]]]]:
    """:func:`fit_task` bound to the shared inputs, bins and plan: give it tree indices."""
    return functools.partial(
        fit_task, shared.specs["codes"], bins.n_bins, bins.is_categorical, list(bins.edges),
        shared.specs["y"], shared.specs.get("sw"), plan.to_json(),
    )


def _chunks(indices: Sequence[int], n_in_bag: int, n_workers: int) -> list[list[int]]:
    """Task sizes: small data batches trees (one vectorised pass); large data one per task."""
    per_task = max(1, BATCH_INSTANCES // max(n_in_bag, 1))
    per_task = min(per_task, max(1, math.ceil(len(indices) / n_workers)))
    return [list(indices[i : i + per_task]) for i in range(0, len(indices), per_task)]


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
    def _start(self, X: object, y: object, sample_weight: object) -> _FitJob:
        n_estimators = check_int("n_estimators", self.n_estimators, 1)
        if self.oob_score and not self.bootstrap:
            raise ValueError("oob_score=True needs bootstrap=True")
        prep = prepare(X, y, sample_weight, classification=self._classification)
        if self.warm_start and hasattr(self, "trees_"):
            if n_estimators < len(self.trees_):
                raise ValueError(
                    f"n_estimators={n_estimators} must be >= the {len(self.trees_)} trees "
                    "already fitted when warm_start=True"
                )
            if prep.X.shape[1] != self.n_features_in_ or prep.features != self.features_:
                raise ValueError("warm_start fit needs data with the same features as before")
            if prep.classes is not None and not np.array_equal(prep.classes, self.classes_):
                raise ValueError("warm_start fit needs the same classes as before")
            seed = self._seed_
            first = len(self.trees_)
            reuse: BinnedData | None = self.bins_
        else:
            seed = resolve_seed(self.random_state)
            first = 0
            reuse = None
        plan = plan_for(
            self, prep, seed=seed, bootstrap=self.bootstrap, max_samples=self.max_samples,
            feature_subspace=self.feature_subspace,
        )
        if reuse is not None and plan != self.plan_:
            raise ValueError("warm_start fit cannot change parameters other than n_estimators")
        return _FitJob(prep, plan, list(range(first, n_estimators)), reuse)

    def fit(self, X: object, y: object = None, sample_weight: object = None) -> Any:
        """Fit the forest; trees are fitted in ``n_jobs`` processes."""
        job = self._start(X, y, sample_weight)
        if job.fits_nothing(stacklevel=2):
            return self
        bins, trees = self._fit_sync(job)
        self._finish(job, bins, trees)
        return self

    def _fit_sync(self, job: _FitJob) -> tuple[BinnedData, dict[int, TreeArrays]]:
        plan = job.plan
        n_workers = min(effective_n_jobs(self.n_jobs), len(job.indices))
        binned = self._bin_here(job)
        self._release_rows(job)
        prep = job.prep
        bins = strip_codes(binned)
        if n_workers == 1:
            trees = fit_trees(plan, binned, prep.y, prep.sample_weight, job.indices)
            return bins, dict(zip(job.indices, trees, strict=True))
        executor = get_executor(n_workers)
        out: dict[int, TreeArrays] = {}
        with SharedArrays(self._shared_inputs(prep)) as shared:
            # Row-major, the layout the tree builder reads: workers then use the shared
            # segment as it is instead of each making a transposed copy per batch.
            shared.allocate("codes", binned.codes.shape[::-1], np.uint8)[...] = binned.codes.T
            del binned
            futures: dict[Future[list[dict[str, np.ndarray]]], list[int]] = {}
            chunks = iter(_chunks(job.indices, plan.n_draws, n_workers))
            fit_chunk = _fit_call(shared, bins, plan)

            def submit_next() -> None:
                chunk = next(chunks, None)
                if chunk is not None:
                    futures[executor.submit(fit_chunk, chunk)] = chunk

            try:
                # At most n_jobs tasks in flight, even when the shared pool is larger.
                for _ in range(n_workers):
                    submit_next()
                while futures:
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for fut in done:
                        for i, arrays in zip(futures.pop(fut), fut.result(), strict=True):
                            out[i] = TreeArrays.from_arrays(arrays, validate=False)
                        submit_next()
            finally:
                for fut in futures:
                    fut.cancel()
                wait(futures)  # running tasks read the segments: let them finish first
        return bins, out

    def _release_rows(self, job: _FitJob) -> None:
        """Drop the fit's float64 copy of X once it is binned (out-of-bag scoring reads it).

        Trees only need the codes; without this the copy (8 bytes a value, 8 times the
        codes) would stay alive until the end of the fit, through its peak.
        """
        if not self.oob_score:
            job.prep = dataclasses.replace(
                job.prep, X=np.empty((0, job.prep.X.shape[1]), dtype=np.float64)
            )

    def _bin_here(self, job: _FitJob) -> BinnedData:
        if job.reuse_bins is not None:
            b = job.reuse_bins
            return BinnedData(transform(b, job.prep.X), b.n_bins, b.is_categorical, b.edges)
        return Binner(self.max_bins).fit(
            job.prep.X, job.prep.is_categorical, job.prep.n_categories, job.prep.sample_weight
        )

    @staticmethod
    def _shared_inputs(prep: Prepared) -> dict[str, np.ndarray[Any, Any]]:
        arrays: dict[str, np.ndarray[Any, Any]] = {"y": prep.y}
        if prep.sample_weight is not None:
            arrays["sw"] = prep.sample_weight
        return arrays

    async def iter_fit_async(
        self, X: object, y: object = None, sample_weight: object = None
    ) -> AsyncIterator[FitProgress]:
        """Fit without blocking the event loop, yielding progress as each tree finishes.

        Binning and tree fitting run in the process pool; the loop only schedules. The forest
        is complete (and fitted attributes set) once the iterator is exhausted. Cancelling
        the consumer cancels the queued tasks and leaves the estimator as it was.
        """
        loop = asyncio.get_running_loop()
        job = self._start(X, y, sample_weight)
        if job.fits_nothing(stacklevel=2):
            return
        prep, plan = job.prep, job.plan
        n_workers = max(1, min(effective_n_jobs(self.n_jobs), len(job.indices)))
        executor = get_executor(n_workers)
        t0 = time.perf_counter()
        trees: dict[int, TreeArrays] = {}
        with SharedArrays(self._shared_inputs(prep)) as shared:
            # row-major (n_samples, n_features), as in _fit_sync
            codes = shared.allocate("codes", prep.X.shape, np.uint8)
            if job.reuse_bins is not None:
                b = job.reuse_bins
                codes[...] = (await loop.run_in_executor(None, transform, b, prep.X)).T
                bins = b
            else:
                x_shared = SharedArrays(
                    {"X": prep.X}
                    | ({"sw": prep.sample_weight} if prep.sample_weight is not None else {})
                )
                try:
                    n_bins, edges = await loop.run_in_executor(
                        executor, bin_task, x_shared.specs["X"], shared.specs["codes"],
                        prep.is_categorical, prep.n_categories, self.max_bins,
                        x_shared.specs.get("sw"),
                    )
                finally:
                    x_shared.close()
                bins = BinnedData(
                    np.empty((len(edges), 0), np.uint8), n_bins, prep.is_categorical, tuple(edges)
                )
            self._release_rows(job)
            prep = job.prep
            pending: dict[asyncio.Future[list[dict[str, np.ndarray]]], list[int]] = {}
            chunks = iter(_chunks(job.indices, plan.n_draws, n_workers))
            fit_chunk = _fit_call(shared, bins, plan)

            def submit_next() -> None:
                chunk = next(chunks, None)
                if chunk is not None:
                    pending[loop.run_in_executor(executor, fit_chunk, chunk)] = chunk

            for _ in range(n_workers):  # at most n_jobs tasks in flight
                submit_next()
            try:
                while pending:
                    done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for fut in sorted(done, key=lambda f: pending[f][0]):
                        chunk = pending.pop(fut)
                        submit_next()
                        for i, arrays in zip(chunk, fut.result(), strict=True):
                            trees[i] = TreeArrays.from_arrays(arrays, validate=False)
                            yield FitProgress(
                                i, len(trees), len(job.indices), time.perf_counter() - t0,
                                trees[i],
                            )
            finally:
                for fut in pending:
                    fut.cancel()
                if pending:
                    # Tasks already running still read the shared segments: wait for them
                    # before the segments are unlinked.
                    await asyncio.gather(*pending, return_exceptions=True)
        self._finish(job, bins, trees)

    async def fit_async(
        self,
        X: object,
        y: object = None,
        sample_weight: object = None,
        *,
        cluster: Any = None,
        on_progress: Callable[[FitProgress], object] | None = None,
    ) -> Any:
        """``fit`` without blocking the event loop; with ``cluster``, fit on a cluster."""
        if cluster is not None:
            return await cluster.fit(self, X, y, sample_weight=sample_weight,
                                     on_progress=on_progress)
        async for progress in self.iter_fit_async(X, y, sample_weight):
            if on_progress is not None:
                on_progress(progress)
        return self

    def _finish(
        self, job: _FitJob, bins: BinnedData | None, new_trees: dict[int, TreeArrays]
    ) -> None:
        prep = job.prep
        missing = [i for i in job.indices if i not in new_trees]
        if missing:
            raise RuntimeError(f"trees {missing[:5]} were not fitted")
        assert bins is not None
        old = list(self.trees_) if job.reuse_bins is not None else []
        self.set_fitted_trees(prep, job.plan, strip_codes(bins),
                              old + [new_trees[i] for i in job.indices])
        if self.oob_score:
            self._compute_oob(prep)

    def set_fitted_trees(
        self, prep: Prepared, plan: ForestPlan, bins: BinnedData, trees: list[TreeArrays]
    ) -> None:
        """Install fitted trees (in tree-index order) and the state that goes with them."""
        self.trees_ = trees
        self.bins_ = bins
        self.plan_ = plan
        self._seed_ = plan.seed
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
        leaves = flat.leaves(prep.X)
        n_out = flat.value.shape[1]
        acc = np.zeros((n, n_out))
        seen = np.zeros(n, dtype=np.int64)
        for t in range(len(self.trees_)):
            oob = in_bag_counts(self.plan_, t, n) == 0
            acc[oob] += flat.value[leaves[oob, t]]
            seen[oob] += 1
        has = seen > 0
        if not has.all():
            warnings.warn(
                f"{int((~has).sum())} samples were in-bag for every tree; their out-of-bag "
                "estimate is left out of oob_score_",
                UserWarning,
                stacklevel=3,
            )
        pred = acc[has] / seen[has, None]
        if self._classification:
            self.oob_decision_function_ = np.where(
                has[:, None], acc / np.maximum(seen, 1)[:, None], np.nan
            )
            self.oob_score_ = accuracy_score(prep.y[has], np.argmax(pred, axis=1))
        else:
            self.oob_prediction_ = np.where(has, acc[:, 0] / np.maximum(seen, 1), np.nan)
            # No sample with an estimate: nothing to score (r2_score needs one).
            self.oob_score_ = r2_score(prep.y[has], pred[:, 0]) if has.any() else 0.0

    # --- async prediction ------------------------------------------------------------------
    def _shared_model(self) -> Any:
        """This fitted model in shared memory for pool processes (cached outside __dict__)."""
        from ._shared_model import SharedModel

        key = id(self.trees_)
        shared = _SHARED.get(self)
        if shared is None or shared.key != key:
            if shared is not None:
                shared.close()
            shared = SharedModel(self._flat_forest(), key)
            _SHARED[self] = shared
        return shared

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
        """Predict in row blocks on the process pool so that the event loop stays free."""
        loop = asyncio.get_running_loop()
        Xe = self._encode(X)
        if Xe.shape[0] <= block_rows // 8:
            return self._flat_forest().mean_value(Xe)  # tiny: cheaper than a round trip
        shared = self._shared_model()
        executor = get_executor(max(effective_n_jobs(self.n_jobs), 1))
        futures = [
            loop.run_in_executor(executor, shared.task, Xe[lo : lo + block_rows])
            for lo in range(0, Xe.shape[0], block_rows)
        ]
        parts = await asyncio.gather(*futures)
        return np.concatenate(parts, axis=0)


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
