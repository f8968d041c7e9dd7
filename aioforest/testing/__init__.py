"""Tools for testing a cluster under failure; never part of a production deployment.

:class:`ChaosProxy` sits between workers and the master and cuts connections on demand,
the network half of fault injection (the process half is the worker's
``--inject-fault``, :class:`aioforest.cluster.Faults`). Used by the fault-injection tests
and ``benchmarks/bench_faults.py``.
"""

from ._chaos import ChaosProxy

__all__ = ["ChaosProxy"]
