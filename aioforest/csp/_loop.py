"""Lazy event-loop binding shared by every primitive of the package."""

from __future__ import annotations

import asyncio

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


def rearm_cancellation(exc: asyncio.CancelledError) -> None:
    """Re-request a cancellation that interrupted an operation which had already completed.

    Used when a parked operation was *committed* by another task (a value was delivered, a
    lock handed over) and the owner was cancelled before it could resume: the operation must
    report success, so the ``CancelledError`` is swallowed here and a new cancellation with
    the same message is requested on the current task. It is delivered at the task's next
    ``await`` (or when its coroutine returns). ``uncancel()`` first keeps
    ``Task.cancelling()`` unchanged, so ``asyncio.timeout`` and ``TaskGroup`` still see one
    request. Re-raises ``exc`` if there is no current task to re-arm.
    """
    task = asyncio.current_task()
    if task is None:
        raise exc
    message = exc.args[0] if exc.args else None
    task.uncancel()
    task.cancel(message)
