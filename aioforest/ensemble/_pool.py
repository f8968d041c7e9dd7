"""The process pool that fits trees, and shared memory to hand it large arrays once.

A forest's binned matrix goes into one shared-memory segment; each task names the segment
instead of carrying the data, so a task costs a few hundred bytes of pickling between our own
processes however big the data is. The pool is created lazily, kept for reuse across fits
(like joblib's reusable executor), and started with ``forkserver`` on Linux, which is safe in
processes that already run threads or an event loop.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing as mp
import os
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from .._malloc import tune_malloc

__all__ = ["ArraySpec", "SharedArrays", "attach", "effective_n_jobs", "get_executor"]

#: (segment name, shape, dtype string) of one array in shared memory.
ArraySpec = tuple[str, tuple[int, ...], str]


# Segments whose arrays were still referenced when we wanted to unmap them. NumPy arrays made
# with ``np.frombuffer`` hold a buffer export, so ``close()`` refuses (BufferError) instead
# of unmapping memory under a live array; such segments wait here and are retried later.
_RETIRED: list[SharedMemory] = []


def _view(shm: SharedMemory, shape: tuple[int, ...], dtype: Any) -> np.ndarray[Any, Any]:
    dt = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    if count == 0:
        return np.empty(shape, dtype=dt)
    buf = shm.buf
    assert buf is not None, "segment already closed"
    return np.frombuffer(buf, dtype=dt, count=count).reshape(shape)


def _retire(shm: SharedMemory | None = None) -> None:
    """Unmap ``shm`` (and earlier retired segments) once no array uses it any more."""
    if shm is not None:
        _RETIRED.append(shm)
    still: list[SharedMemory] = []
    for seg in _RETIRED:
        try:
            seg.close()
        except BufferError:
            still.append(seg)
    _RETIRED[:] = still


def effective_n_jobs(n_jobs: int | None) -> int:
    """scikit-learn's convention: None means 1, -1 all cores, -2 all but one."""
    if n_jobs is None:
        return 1
    if not isinstance(n_jobs, int | np.integer) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero integer or None, got {n_jobs!r}")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return int(n_jobs) if n_jobs > 0 else max(cores + 1 + int(n_jobs), 1)


class SharedArrays:
    """Copies arrays into shared memory; unlinks them on ``close()`` (or ``with`` exit)."""

    def __init__(self, arrays: dict[str, np.ndarray[Any, Any]]) -> None:
        self._segments: list[SharedMemory] = []
        self.specs: dict[str, ArraySpec] = {}
        self.arrays: dict[str, np.ndarray[Any, Any]] = {}
        try:
            for name, arr in arrays.items():
                self.allocate(name, arr.shape, arr.dtype)[...] = arr
        except BaseException:
            self.close()
            raise

    def allocate(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray[Any, Any]:
        """A new zeroed shared array that workers may write into."""
        dt = np.dtype(dtype)
        nbytes = max(int(np.prod(shape, dtype=np.int64)) * dt.itemsize, 1)
        shm = SharedMemory(create=True, size=nbytes)
        self._segments.append(shm)
        view = _view(shm, tuple(shape), dt)
        self.specs[name] = (shm.name, tuple(int(s) for s in shape), dt.str)
        self.arrays[name] = view
        return view

    def close(self) -> None:
        """Unlink the segments; each is unmapped once no array of it is left."""
        self.arrays.clear()
        for shm in self._segments:
            with contextlib.suppress(FileNotFoundError):
                shm.unlink()
            _retire(shm)
        self._segments.clear()

    def __enter__(self) -> SharedArrays:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- worker side -------------------------------------------------------------------------

_ATTACHED: OrderedDict[str, SharedMemory] = OrderedDict()
_ATTACH_CACHE = 8  # segments kept mapped per worker; older ones are closed
_attach_lock = threading.Lock()


def _open_untracked(name: str) -> SharedMemory:
    # On Python < 3.13 attaching registers the segment with the resource tracker, which would
    # then unlink it (and warn) when this worker exits. The parent owns the segment.
    if sys.version_info >= (3, 13):
        return SharedMemory(name=name, track=False)  # type: ignore[call-arg,unused-ignore]
    register = resource_tracker.register
    resource_tracker.register = lambda *a, **k: None
    try:
        return SharedMemory(name=name)
    finally:
        resource_tracker.register = register


def attach(spec: ArraySpec) -> np.ndarray[Any, Any]:
    """The array a :class:`SharedArrays` spec names, mapped into this process."""
    name, shape, dtype = spec
    with _attach_lock:
        shm = _ATTACHED.get(name)
        if shm is None:
            shm = _open_untracked(name)
            _ATTACHED[name] = shm
            while len(_ATTACHED) > _ATTACH_CACHE:
                _retire(_ATTACHED.popitem(last=False)[1])
        else:
            _ATTACHED.move_to_end(name)
    return _view(shm, tuple(shape), dtype)


# --- the pool ----------------------------------------------------------------------------

_executor: ProcessPoolExecutor | None = None
_executor_workers = 0
_executor_lock = threading.Lock()


_prep_lock = threading.Lock()


def _without_main(get_data: Any) -> Any:
    def get_preparation_data(name: str) -> dict[str, Any]:
        data = dict(get_data(name))
        # Our tasks are aioforest functions: workers never need the caller's __main__, and
        # re-running a script without an ``if __name__ == "__main__"`` guard in every worker
        # would start the script's own work again there.
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data

    return get_preparation_data


if sys.platform.startswith("linux"):
    from multiprocessing import context as _mpctx
    from multiprocessing import popen_forkserver as _popen_fs
    from multiprocessing import spawn as _spawn

    class _NoMainPopen(_popen_fs.Popen):
        def _launch(self, process_obj: Any) -> None:
            with _prep_lock:
                original = _spawn.get_preparation_data
                _spawn.get_preparation_data = _without_main(original)
                try:
                    super()._launch(process_obj)  # type: ignore[misc]
                finally:
                    _spawn.get_preparation_data = original

    class _NoMainProcess(_mpctx.ForkServerProcess):
        @staticmethod
        def _Popen(process_obj: Any) -> Any:
            return _NoMainPopen(process_obj)

    class _NoMainContext(_mpctx.ForkServerContext):
        Process = _NoMainProcess


def _context() -> Any:
    if not sys.platform.startswith("linux"):
        return mp.get_context("spawn")
    ctx = _NoMainContext()
    # Workers fork from a server that already imported numpy and the tree code.
    ctx.set_forkserver_preload(["aioforest.ensemble._tasks"])
    return ctx


def _watch_parent(interval: float = 1.0) -> None:
    """Pool-process initializer: malloc thresholds fit for tree growth (``tune_malloc``),
    and exit when the process that started us is gone.

    Pool processes block on a queue whose write end they hold themselves, so they never see
    EOF when the owner is SIGKILLed, and with forkserver they also keep the server alive.
    ``multiprocessing.parent_process()`` is the owner (its sentinel pipe closes when the
    owner dies, however it dies); a daemon thread polls it and ends this process.
    """
    tune_malloc()
    owner = mp.parent_process()
    if owner is None:
        return

    def watch() -> None:
        while owner.is_alive():
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, name="aioforest-parent-watch", daemon=True).start()


def get_executor(n_workers: int) -> ProcessPoolExecutor:
    """A process pool with at least ``n_workers`` processes, reused across calls.

    Callers bound their own parallelism by how many tasks they submit, so a larger pool
    left by an earlier call is reused rather than restarted.
    """
    global _executor, _executor_workers
    with _executor_lock:
        broken = _executor is not None and getattr(_executor, "_broken", False)
        if _executor is None or broken or _executor_workers < n_workers:
            if _executor is not None:
                _executor.shutdown(wait=not broken, cancel_futures=True)
            _executor = ProcessPoolExecutor(
                max_workers=n_workers, mp_context=_context(), initializer=_watch_parent
            )
            _executor_workers = n_workers
        return _executor


def shutdown_executor() -> None:
    """Stop the shared pool (it restarts on next use)."""
    global _executor
    with _executor_lock:
        if _executor is not None:
            _executor.shutdown(wait=True, cancel_futures=True)
            _executor = None


def _forget_segments_at_exit() -> None:
    # At interpreter exit arrays may still view our segments; the OS unmaps them anyway.
    # Detach the handles so SharedMemory.__del__ does not complain about live exports.
    with _attach_lock:
        _RETIRED.extend(_ATTACHED.values())
        _ATTACHED.clear()
    _retire()
    for seg in _RETIRED:
        seg._buf = None  # type: ignore[attr-defined]
        seg._mmap = None  # type: ignore[attr-defined]
    _RETIRED.clear()


atexit.register(shutdown_executor)
atexit.register(_forget_segments_at_exit)
