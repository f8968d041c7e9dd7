"""The local runner of the fit protocol: a forest's tasks on the ``n_jobs`` process pool.

The codes, labels and weights go to shared memory once; each task names the segments and
carries tree indices only. The synchronous fit (:func:`fit_local`) and the asynchronous one
(:func:`iter_fit_local`) share one submit loop, :class:`SubmitLoop`: at most ``n_jobs``
tasks in flight, the next submitted as one finishes, finished tasks read in tree order.
They differ only in how they wait (``concurrent.futures.wait`` or ``asyncio.wait``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from ..data import Bins
from ..tree import ForestPlan, TreeArrays
from ._fit_job import FitJob, FitTask
from ._pool import SharedArrays, effective_n_jobs, get_executor
from ._tasks import bin_task, fit_task

__all__ = ["SubmitLoop", "fit_local", "iter_fit_local"]

#: What a pool task returns: each tree's arrays.
TaskResult = list[dict[str, np.ndarray[Any, Any]]]


class _Pending(Protocol):
    """A submitted task: a ``concurrent.futures.Future`` or an ``asyncio.Future``."""

    def result(self) -> TaskResult: ...

    def cancel(self) -> bool: ...


F = TypeVar("F", bound=_Pending)


class SubmitLoop(Generic[F]):
    """The one submit loop of local fits: ``limit`` tasks in flight, refilled as they end."""

    def __init__(
        self, tasks: Iterable[FitTask], submit: Callable[[FitTask], F], limit: int, bins: Bins
    ):
        self._tasks = iter(tasks)
        self._bins = bins  # the tasks send back what a tree keeps; the bins rebuild the rest
        self._submit = submit
        self.pending: dict[F, FitTask] = {}
        for _ in range(max(limit, 1)):
            self._submit_next()

    def _submit_next(self) -> None:
        task = next(self._tasks, None)
        if task is not None:
            self.pending[self._submit(task)] = task

    def collect(self, done: Iterable[F]) -> Iterator[tuple[int, TreeArrays]]:
        """The trees of finished tasks (in tree order); a new task replaces each one."""
        for fut in sorted(done, key=lambda f: self.pending[f].indices[0]):
            task = self.pending.pop(fut)
            self._submit_next()
            for i, arrays in zip(task.indices, fut.result(), strict=True):
                yield i, TreeArrays.from_arrays(arrays, validate=False, bins=self._bins)

    def cancel(self) -> list[F]:
        """Cancel the tasks not started yet; return every unfinished one (running tasks read
        the shared segments: wait for them before the segments go)."""
        for fut in self.pending:
            fut.cancel()
        return list(self.pending)


def _inputs(job: FitJob) -> SharedArrays:
    arrays: dict[str, np.ndarray[Any, Any]] = {"y": job.y}
    if job.sample_weight is not None:
        arrays["sw"] = job.sample_weight
    return SharedArrays(arrays)


def _fit_call(
    shared: SharedArrays, bins: Bins, plan: ForestPlan
) -> Callable[[list[int]], TaskResult]:
    """:func:`fit_task` bound to the shared inputs, bins and plan: give it tree indices."""
    return functools.partial(
        fit_task, shared.specs["codes"], bins, shared.specs["y"], shared.specs.get("sw"),
        plan.to_json(),
    )


def fit_local(job: FitJob, n_jobs: int | None) -> dict[int, TreeArrays]:
    """Bin here, then fit the job's trees in ``n_jobs`` pool processes (or in this one)."""
    n_workers = min(effective_n_jobs(n_jobs), len(job.indices))
    if n_workers <= 1:
        bins, codes = job.bin()
        return FitTask(job.plan, job.indices).run(bins, codes, job.y, job.sample_weight)
    executor = get_executor(n_workers)
    out: dict[int, TreeArrays] = {}
    with _inputs(job) as shared:
        # Row-major, the layout the tree builder reads: workers then use the shared
        # segment as it is instead of each making a transposed copy per batch. The
        # features are binned in n_workers threads, straight into the segment.
        bins = job.bin_into(shared.allocate("codes", job.X.shape, np.uint8), n_workers)
        call = _fit_call(shared, bins, job.plan)

        def submit(task: FitTask) -> Future[TaskResult]:
            return executor.submit(call, list(task.indices))

        loop = SubmitLoop(job.tasks(n_workers), submit, n_workers, bins)
        try:
            while loop.pending:
                done, _ = wait(loop.pending, return_when=FIRST_COMPLETED)
                out.update(loop.collect(done))
        finally:
            wait(loop.cancel())
    return out


async def _bin_into(job: FitJob, shared: SharedArrays, n_workers: int) -> Bins:
    """Bin the job's rows into the shared codes: a warm start in a thread with its bins, a
    new fit in a pool process (learning the bins there)."""
    loop = asyncio.get_running_loop()
    codes = shared.allocate("codes", job.X.shape, np.uint8)  # row-major, as in fit_local
    if job.warm:
        return await loop.run_in_executor(None, job.bin_into, codes, n_workers)
    x_shared = SharedArrays(
        {"X": job.X} | ({"sw": job.sample_weight} if job.sample_weight is not None else {})
    )
    try:
        bins = await loop.run_in_executor(
            get_executor(n_workers), bin_task, x_shared.specs["X"], shared.specs["codes"],
            job.binner, job.is_categorical, job.n_categories, x_shared.specs.get("sw"),
        )
    finally:
        x_shared.close()
    job.use_bins(bins)
    return bins


async def iter_fit_local(
    job: FitJob, n_jobs: int | None
) -> AsyncGenerator[tuple[int, TreeArrays], None]:
    """Bin and fit in the pool without blocking the event loop; yield each tree as it comes.

    Closing the iterator early cancels the queued tasks (and waits for running ones).
    """
    loop = asyncio.get_running_loop()
    n_workers = max(1, min(effective_n_jobs(n_jobs), len(job.indices)))
    executor = get_executor(n_workers)
    with _inputs(job) as shared:
        bins = await _bin_into(job, shared, n_workers)
        call = _fit_call(shared, bins, job.plan)

        def submit(task: FitTask) -> asyncio.Future[TaskResult]:
            return loop.run_in_executor(executor, call, list(task.indices))

        tasks = SubmitLoop(job.tasks(n_workers), submit, n_workers, bins)
        try:
            while tasks.pending:
                done, _ = await asyncio.wait(tasks.pending, return_when=asyncio.FIRST_COMPLETED)
                for item in tasks.collect(done):
                    yield item
        finally:
            unfinished = tasks.cancel()
            if unfinished:
                await asyncio.gather(*unfinished, return_exceptions=True)
