"""Lazy event-loop binding shared by every primitive of the package."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Final

__all__ = ["LoopBound", "rearm_cancellation"]


class LoopBound:
    """Base for objects that may be created anywhere but wait on one event loop.

    Nothing loop-related happens in ``__init__``: the first operation that has to park a
    task binds the object to the running loop (futures are created lazily, only then).
    Waiting on it later from another loop raises :class:`RuntimeError`, because its parked
    futures belong to the first loop and loops are not thread-safe.
    """

    __slots__ = ("_loop",)

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, after binding to it (or checking it is the bound one)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        return loop

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to ``loop``, or raise if already bound to another one."""
        if self._loop is not None and self._loop is not loop:
            raise RuntimeError(
                f"{self!r} is bound to a different event loop: it was first waited on from"
                " another loop (create one object per loop)"
            )
        self._loop = loop


# Since 3.13, uncancel() down to zero also clears a pending (not yet delivered) request.
_UNCANCEL_CLEARS_PENDING: Final = sys.version_info >= (3, 13)


def rearm_cancellation(exc: asyncio.CancelledError) -> None:
    """Re-request a cancellation that interrupted an operation which had already completed.

    Used when a parked operation was *committed* by another task (a value was delivered)
    and its owner was cancelled before it could resume: the operation must report success,
    so the ``CancelledError`` is swallowed and the cancellation is requested again, to be
    delivered at the task's next suspension. ``Task.cancelling()`` keeps counting one
    request, so ``asyncio.timeout``, ``TaskGroup`` and :class:`Group` can still withdraw it.

    * Python 3.13+: ``uncancel()`` then ``cancel()`` at once (a pending request is cleared
      again if its requester withdraws it, e.g. when an expired ``asyncio.timeout`` block
      exits without another ``await``). If the task returns without suspending, it ends
      cancelled.
    * Before 3.13 ``uncancel()`` cannot clear a pending request, so an immediate
      ``cancel()`` would leak a stray cancellation past such a block. Instead the request
      is re-issued one loop iteration later (when the task is suspended), only if it has
      not been withdrawn meanwhile; a task that has finished by then is left finished.

    Re-raises ``exc`` if there is no current task to re-arm.
    """
    task = asyncio.current_task()
    if task is None:
        raise exc
    message = exc.args[0] if exc.args else None
    if _UNCANCEL_CLEARS_PENDING:
        task.uncancel()
        task.cancel(message)
    else:
        task.get_loop().call_soon(_redeliver, task, task.cancelling(), message)


def _redeliver(task: asyncio.Task[Any], requests: int, message: Any) -> None:
    if task.done() or task.cancelling() < requests:
        return  # finished, or the request was withdrawn (uncancel) meanwhile
    task.cancel(message)
    task.uncancel()  # the request was already counted once
