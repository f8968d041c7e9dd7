"""Go-style concurrency for asyncio: channels, select, goroutines and sync primitives.

* :class:`Chan` -- unbuffered (rendezvous) or buffered FIFO channels with Go's close
  semantics and cancellation-safe operations; :class:`ChannelStatistics` snapshots.
* :func:`select` over :func:`recv` / :func:`send` cases, returning :class:`Selected`.
* :func:`go` -- spawn a task that is kept alive and whose unobserved failure is logged.
* :class:`WaitGroup`, :class:`Group` (errgroup), :class:`Once`, :class:`Mutex`.
* :class:`WouldBlock`, :class:`ChannelClosed`.

Every object may be created outside a running loop; it binds to the loop that first waits
on it. None of them is thread-safe.
"""

from ._chan import Chan, ChannelStatistics
from ._errors import ChannelClosed, WouldBlock
from ._go import go
from ._select import RecvCase, Selected, SendCase, recv, select, send
from ._sync import Group, Mutex, Once, WaitGroup

__all__ = [
    "Chan",
    "ChannelClosed",
    "ChannelStatistics",
    "Group",
    "Mutex",
    "Once",
    "RecvCase",
    "Selected",
    "SendCase",
    "WaitGroup",
    "WouldBlock",
    "go",
    "recv",
    "select",
    "send",
]

# Show the public import path in reprs, tracebacks and docs (as trio does).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith(__name__ + "."):
        _obj.__module__ = __name__
del _name, _obj
