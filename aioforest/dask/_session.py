"""The client's side of a fit on Dask: submitting tasks and waiting for them, with a
deadline on progress and a way to stop.

Every call here blocks its thread, never an event loop: a synchronous ``distributed.Client``
is used as it is, and an asynchronous one (``Client(asynchronous=True)``) acts
synchronously from any thread but its loop's, which is where ``fit_async`` runs the fit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..cluster import ClusterError
from ..tree import FitCancelled

__all__ = ["DaskCluster", "DaskFitError", "DaskSession"]

#: How often a wait wakes up to check the stop flag (seconds).
POLL_SECONDS = 0.25


class DaskFitError(ClusterError):
    """A fit on Dask that cannot finish: a task failed for good, or the cluster made no
    progress within the timeout. The text says which operation and why."""


@dataclass(frozen=True)
class DaskCluster:
    """A ``distributed.Client`` with the options of a fit on it; ``cluster=client`` is
    ``cluster=DaskCluster(client)``.

    Args:
        client: a ``distributed.Client``, synchronous or asynchronous.
        timeout: seconds without any task finishing before the fit fails with
            :class:`DaskFitError` (a cluster without workers, a task that never runs).
        partition_rows: rows per partition, at most, when numpy or pandas inputs are
            scattered (and at least one partition per worker thread).
        retries: times dask reruns a task whose worker died, on top of its own
            ``allowed-failures``.
        trees_per_batch: ``mode="data"``: trees grown together (default: as many as the
            workers' memory budget allows, ``aioforest.cluster.trees_per_batch``).
        local_subtree_rows: ``mode="data"``: nodes with at most this many instances
            finish their subtrees in one task (default: the TCP cluster's policy,
            ``aioforest.cluster.local_subtree_rows``; 0: never).

    None of these options changes the forest.
    """

    client: Any
    timeout: float = 600.0
    partition_rows: int = 1 << 17
    retries: int = 3
    trees_per_batch: int | None = None
    local_subtree_rows: int | None = None


@dataclass
class DaskSession:
    """One fit's use of the cluster (see the module docstring)."""

    options: DaskCluster
    stop: threading.Event = field(default_factory=threading.Event)
    tasks: int = 0
    waits: float = 0.0

    @property
    def client(self) -> Any:
        return self.options.client

    def threads(self) -> int:
        """Worker threads in the cluster now (at least 1)."""
        info = self.client.scheduler_info(n_workers=-1)
        return max(1, sum(int(w.get("nthreads", 1)) for w in info["workers"].values()))

    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info(n_workers=-1)["workers"]))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the cluster (futures among ``args`` are its inputs)."""
        if self.stop.is_set():
            raise FitCancelled("the fit on Dask was stopped")
        self.tasks += 1
        return self.client.submit(fn, *args, pure=False, retries=self.options.retries)

    def completed(self, futures: Sequence[Any], what: str) -> Iterator[Any]:
        """The futures, each as it finishes (failed ones raise :class:`DaskFitError`)."""
        from distributed import wait

        pending = set(futures)
        last = time.monotonic()
        t0 = time.perf_counter()
        try:
            while pending:
                if self.stop.is_set():
                    raise FitCancelled("the fit on Dask was stopped")
                try:
                    done, _ = wait(list(pending), timeout=POLL_SECONDS,
                                   return_when="FIRST_COMPLETED")
                except TimeoutError:
                    done = set()
                if not done:
                    if time.monotonic() - last > self.options.timeout:
                        raise DaskFitError(self._stalled(what, len(pending), len(futures)))
                    continue
                last = time.monotonic()
                for future in done:
                    pending.discard(future)
                    self._check(future, what)
                    yield future
        finally:
            self.waits += time.perf_counter() - t0

    def results(self, futures: Sequence[Any], what: str) -> list[Any]:
        """Every future's result, in order (one wait for all: the common case)."""
        from distributed import wait

        t0 = time.perf_counter()
        last, n_done = time.monotonic(), 0
        try:
            while True:
                if self.stop.is_set():
                    raise FitCancelled("the fit on Dask was stopped")
                try:
                    wait(list(futures), timeout=POLL_SECONDS, return_when="ALL_COMPLETED")
                    break
                except TimeoutError:
                    done = sum(1 for f in futures if f.done())
                    if done > n_done:
                        last, n_done = time.monotonic(), done
                    elif time.monotonic() - last > self.options.timeout:
                        raise DaskFitError(self._stalled(what, len(futures) - done,
                                                         len(futures))) from None
        finally:
            self.waits += time.perf_counter() - t0
        for future in futures:
            self._check(future, what)
        return list(self.client.gather(list(futures)))

    def _stalled(self, what: str, pending: int, total: int) -> str:
        try:
            workers = len(self.client.scheduler_info(n_workers=-1)["workers"])
        except Exception:
            workers = -1
        return (f"{what}: the Dask cluster made no progress for {self.options.timeout:g} s "
                f"({pending} of {total} tasks unfinished, {workers} workers); see the "
                "dashboard, or give DaskCluster(client, timeout=...)")

    def _check(self, future: Any, what: str) -> None:
        if future.status == "error":
            raise self._failed(what, future)
        if future.status == "cancelled":
            raise DaskFitError(f"{what}: a task was cancelled by the cluster ({future.key}); "
                               "its data was lost")

    @staticmethod
    def _failed(what: str, future: Any) -> BaseException:
        exc = future.exception()
        name = type(exc).__name__
        if name == "KilledWorker":
            return DaskFitError(f"{what}: workers kept dying while running {future.key} "
                                f"(dask's KilledWorker: {exc})")
        if isinstance(exc, ValueError | TypeError):
            return exc  # bad input: the error the user would get from a local fit
        return DaskFitError(f"{what}: a task failed: {name}: {exc}")
