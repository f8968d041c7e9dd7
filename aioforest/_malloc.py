"""glibc's malloc thresholds for the processes that grow trees.

Growing a tree allocates and frees many temporary arrays of a few hundred KiB to a few MiB
each level. glibc serves those from its heap once its mmap threshold has adapted to them,
unless a trim or mmap threshold was set by hand, which freezes the mmap threshold at 128
KiB: then every such array is a fresh ``mmap`` whose pages fault in one by one, and is
unmapped again when freed. Dask sets ``MALLOC_TRIM_THRESHOLD_=65536`` in its workers'
environment (and in the environment of the process that starts a ``LocalCluster``, which
our process pool inherits), and that made tree growth 2.3x slower here.

:func:`tune_malloc` sets both thresholds to 32 MiB (glibc's own upper bound for the
adaptive mmap threshold), once per process: trees grow at their usual speed and at most
32 MiB of freed heap is kept back from the operating system. It does nothing where the C
library is not glibc.

:func:`release_heap` hands freed heap back at once (``malloc_trim``). glibc keeps a freed
block of a size it has seen freed before in its heap, so a fit's dropped float matrix (and
the arenas of the threads that binned it) would otherwise stay in the process until exit.
"""

from __future__ import annotations

import ctypes
import platform

__all__ = ["MALLOC_THRESHOLD", "release_heap", "tune_malloc"]

MALLOC_THRESHOLD = 32 << 20
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_tuned = False


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def release_heap() -> bool:
    """Return the free memory of every malloc arena to the operating system; True if done
    (glibc only)."""
    libc = _glibc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True


def tune_malloc() -> bool:
    """Set glibc's trim and mmap thresholds (see the module docstring); True if set."""
    global _tuned
    if _tuned:
        return True
    mallopt = getattr(_glibc(), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MALLOC_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, MALLOC_THRESHOLD))
    _tuned = ok
    return ok
