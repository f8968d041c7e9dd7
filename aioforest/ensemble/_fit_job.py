"""The fit protocol: one public interface for whatever runs a forest's tree tasks.

A forest fit is four steps, and every runner (the local process pool, the TCP cluster, a
Dask backend, a test that fits trees by hand) goes through the same four::

    job = forest.fit_job(X, y, sample_weight)   # 1. validate, resolve the plan
    bins, codes = job.bin()                     # 2. learn the bins (warm start: reuse them)
    trees = {}
    for task in job.tasks(n_runners=4):         # 3. the trees to fit, in tasks
        trees |= task.run(bins, codes, job.y, job.sample_weight)   # anywhere, any order
    job.install(trees)                          # 4. the fitted forest

Tree ``i`` is a pure function of (bins, codes, labels, weights, plan, ``i``), so tasks may
run in any order, on any machine, split between several runners, retried or resumed: the
installed forest is bit-identical to ``forest.fit(X, y, sample_weight)``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .._malloc import release_heap
from .._validation import Prepared
from ..data import Binner, Bins, Feature
from ..tree import BATCH_INSTANCES, ForestPlan, TreeArrays, fit_trees

__all__ = ["FitJob", "FitTask", "SupportsFitJob", "trees_per_task"]

Labels = npt.NDArray[np.int64] | npt.NDArray[np.float64]
Codes = npt.NDArray[np.uint8]
#: Installs (prepared data, plan, bins, every tree in index order) into the estimator.
Installer = Callable[[Prepared, ForestPlan, Bins, list[TreeArrays]], None]


def trees_per_task(n_trees: int, n_draws: int, n_runners: int) -> int:
    """Trees per task: enough to amortise one vectorised pass on small data (``n_draws``
    rows drawn per tree), few enough that each of ``n_runners`` gets a task."""
    by_data = max(1, BATCH_INSTANCES // max(n_draws, 1))
    return min(by_data, max(1, math.ceil(n_trees / max(n_runners, 1))))


class SupportsFitJob(Protocol):
    """An estimator that a runner can fit through the fit protocol (a random forest)."""

    warm_start: bool

    def get_params(self, deep: bool = True) -> dict[str, object]:
        """The estimator's parameters (what a checkpoint records)."""
        ...

    def fit(self, X: object, y: object = None, sample_weight: object = None) -> object:
        """Fit here (through the same protocol)."""
        ...

    def predict(self, X: object, /) -> object:
        """Predict labels or targets for ``X``."""
        ...

    def fit_job(
        self, X: object, y: object = None, sample_weight: object = None
    ) -> FitJob:
        """Validate the data and parameters and return the fit, ready to be run."""
        ...


@dataclass(frozen=True)
class FitTask:
    """Trees ``indices`` of the forest ``plan``: one unit of work for a runner.

    :meth:`run` depends on nothing but its arguments, so a task can run in any process or
    machine that holds the bins, codes, labels and weights.
    """

    plan: ForestPlan
    indices: tuple[int, ...]

    def run(
        self,
        bins: Bins,
        codes: Codes,
        y: Labels,
        sample_weight: npt.NDArray[np.float64] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> dict[int, TreeArrays]:
        """Fit the task's trees on ``codes`` (feature-major, binned by ``bins``).

        ``should_stop`` is polled once per tree level; when it returns True the fit stops
        with ``FitCancelled``.
        """
        trees = fit_trees(self.plan, bins, codes, y, sample_weight, self.indices, should_stop)
        return dict(zip(self.indices, trees, strict=True))


class FitJob:
    """A forest fit in progress: the validated data, the plan and the trees still to fit.

    Get one from the estimator (``forest.fit_job(X, y, sample_weight)``), never build it
    directly. The steps, in order: :meth:`bin` (or, when the bins were learned elsewhere,
    :meth:`use_bins`), :meth:`tasks` (run each anywhere), :meth:`install`.

    A warm-start job (:attr:`warm`) adds trees to an already fitted forest: it reuses that
    forest's bins and plan, and :attr:`indices` are the new trees only.
    """

    def __init__(
        self,
        prepared: Prepared,
        plan: ForestPlan,
        indices: Sequence[int],
        *,
        binner: Binner,
        installer: Installer,
        previous: Sequence[TreeArrays] = (),
        reuse_bins: Bins | None = None,
        keep_rows: bool = False,
    ) -> None:
        self._prep = prepared
        self._plan = plan
        self._indices = tuple(int(i) for i in indices)
        self._binner = binner
        self._installer = installer
        self._previous = list(previous)
        self._reuse = reuse_bins
        self._keep_rows = keep_rows
        self._bins: Bins | None = None
        self._released = False

    # --- what the job is -----------------------------------------------------------------
    @property
    def plan(self) -> ForestPlan:
        """Everything the trees depend on besides the data (resolved parameters, seed)."""
        return self._plan

    @property
    def indices(self) -> tuple[int, ...]:
        """The trees to fit, in index order (empty: nothing to fit)."""
        return self._indices

    @property
    def warm(self) -> bool:
        """Whether this job adds trees to a fitted forest (reusing its bins)."""
        return self._reuse is not None

    @property
    def oob_score(self) -> bool:
        """Whether :meth:`install` scores the trees out of bag (so :attr:`X` is kept)."""
        return self._keep_rows

    @property
    def n_outputs(self) -> int:
        """Outputs per leaf: the number of classes, or 1 for regression."""
        return max(self._plan.n_classes, 1)

    @property
    def n_features(self) -> int:
        return int(self._prep.X.shape[1])

    @property
    def features(self) -> tuple[Feature, ...]:
        """The feature schema of the training data."""
        return self._prep.features

    @property
    def X(self) -> npt.NDArray[np.float64]:
        """The encoded float training matrix (rows, features); dropped once binned, unless
        out-of-bag scoring needs it."""
        if self._released:
            raise RuntimeError("the job's float matrix was dropped once it was binned")
        return self._prep.X

    @property
    def y(self) -> Labels:
        """Class codes (classification) or targets."""
        return self._prep.y

    @property
    def sample_weight(self) -> npt.NDArray[np.float64] | None:
        return self._prep.sample_weight

    @property
    def is_categorical(self) -> npt.NDArray[np.bool_]:
        return self._prep.is_categorical

    @property
    def n_categories(self) -> npt.NDArray[np.int64]:
        return self._prep.n_categories

    @property
    def binner(self) -> Binner:
        """The binner a runner that bins elsewhere must use (see :meth:`use_bins`)."""
        return self._binner

    # --- the steps -------------------------------------------------------------------------
    @property
    def bins(self) -> Bins:
        """The job's bins: the reused ones of a warm start, or those :meth:`bin` learned."""
        bins = self._bins if self._bins is not None else self._reuse
        if bins is None:
            raise RuntimeError("the job is not binned yet: call bin() first")
        return bins

    def bin(self) -> tuple[Bins, Codes]:
        """Learn the bins (a warm start reuses the fitted forest's) and bin the training
        rows: ``(bins, codes)``, codes feature-major ``(n_features, n_samples)`` uint8."""
        if self._reuse is not None:
            bins, codes = self._reuse, self._reuse.transform(self.X)
        else:
            bins, codes = self._binner.fit_transform(
                self.X, self.is_categorical, self.n_categories, self.sample_weight
            )
        self.use_bins(bins)
        return bins, codes

    def bin_into(self, codes: Codes, n_threads: int = 1) -> Bins:
        """:meth:`bin`, writing the codes row-major into ``codes`` ``(n_samples,
        n_features)`` (a shared segment, say) instead of returning them.

        Features bin independently, so ``n_threads`` threads bin a slice of the features
        each (NumPy's sorts and searches release the GIL); the bins and codes are those of
        :meth:`bin`, bit for bit.
        """
        shape = self.X.shape  # raises if the matrix was already dropped
        if codes.shape != shape:
            raise ValueError(f"codes of shape {codes.shape} for a matrix of shape {shape}")
        parts = self._bin_slices(codes, n_threads)
        bins = self._reuse if self._reuse is not None else Bins.concatenate(parts)
        self.use_bins(bins)  # no reference to the float matrix is left here to keep it
        return bins

    def _bin_slices(self, codes: Codes, n_threads: int) -> list[Bins]:
        X = self.X
        bounds = np.linspace(0, self.n_features, max(1, min(n_threads, self.n_features)) + 1)
        slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds.round())]

        def bin_slice(cols: slice) -> Bins:
            if self._reuse is not None:
                bins = self._reuse.select(np.arange(self.n_features)[cols])
                part = bins.transform(X[:, cols])
            else:
                bins, part = self._binner.fit_transform(
                    X[:, cols], self.is_categorical[cols], self.n_categories[cols],
                    self.sample_weight,
                )
            codes[:, cols] = part.T
            return bins

        if len(slices) == 1:
            return [bin_slice(slices[0])]
        with ThreadPoolExecutor(len(slices), thread_name_prefix="aioforest-bin") as pool:
            return list(pool.map(bin_slice, slices))

    def use_bins(self, bins: Bins) -> None:
        """Take bins learned elsewhere (by :attr:`binner` on :attr:`X`, e.g. in a pool
        process) instead of calling :meth:`bin`."""
        if bins.n_features != self.n_features:
            raise ValueError(f"bins of {bins.n_features} features for {self.n_features}")
        if self._reuse is not None and not bins.equals(self._reuse):
            raise ValueError("a warm-start fit must reuse the fitted forest's bins")
        self._bins = bins
        if not self._keep_rows:
            # Trees only need the codes; without this the float64 copy (8 bytes a value,
            # 8 times the codes) would stay alive through the peak of the fit.
            self._prep = dataclasses.replace(
                self._prep, X=np.empty((0, self.n_features), dtype=np.float64)
            )
            self._released = True
            release_heap()  # glibc keeps the freed matrix in its heap otherwise

    def tasks(self, n_runners: int = 1, per_task: int | None = None) -> list[FitTask]:
        """The trees to fit, cut into tasks, in tree order.

        ``per_task`` trees each when given. By default small data batches trees (one
        vectorised pass) and large data gets one tree a task, with at least ``n_runners``
        tasks when there are that many trees, so that every runner gets work. The default
        tasks differ in size by one tree at most, the bigger first, and come in whole
        rounds of ``n_runners``: no runner is left alone with a last big task at the end.
        """
        idx = self._indices
        if per_task is not None:
            if per_task < 1:
                raise ValueError(f"per_task must be >= 1, got {per_task}")
            return [
                FitTask(self._plan, idx[i : i + per_task]) for i in range(0, len(idx), per_task)
            ]
        most = trees_per_task(len(idx), self._plan.n_draws, n_runners)
        n_tasks = math.ceil(len(idx) / most) if idx else 0
        if n_tasks > n_runners > 1:
            n_tasks = min(math.ceil(n_tasks / n_runners) * n_runners, len(idx))
        size, bigger = divmod(len(idx), max(n_tasks, 1))
        tasks, start = [], 0
        for t in range(n_tasks):
            stop = start + size + (t < bigger)
            tasks.append(FitTask(self._plan, idx[start:stop]))
            start = stop
        return tasks

    def install(self, trees: Mapping[int, TreeArrays]) -> None:
        """Install the fitted trees (``trees[i]`` for every ``i`` in :attr:`indices`; other
        entries are ignored) and the state that goes with them into the estimator."""
        missing = [i for i in self._indices if i not in trees]
        if missing:
            raise RuntimeError(f"trees {missing[:5]} were not fitted")
        all_trees = self._previous + [trees[i] for i in self._indices]
        self._installer(self._prep, self._plan, self.bins, all_trees)
