"""``go()``: spawn a task like a goroutine, without losing it or its exception."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["go", "logger"]

T = TypeVar("T")

logger = logging.getLogger("aioforest.csp")

# asyncio keeps only weak references to tasks: a task nobody holds can be garbage
# collected mid-flight. go() keeps every task here until it has finished.
_running: set[asyncio.Task[Any]] = set()


def go(coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
    """Run ``coro`` concurrently in a new task on the running loop and return the task.

    Unlike a bare ``asyncio.create_task``, the task is strongly referenced until it ends, so
    it cannot be garbage collected while it runs. If it fails and nobody retrieves the
    exception (by awaiting the task, ``gather``, ``task.exception()``...) before the loop
    has run the task's completion callbacks, the exception is logged at ERROR level on the
    ``aioforest.csp`` logger (with its traceback) instead of surfacing only when the task is
    garbage collected. Cancelled tasks are not logged. Retrieve failures yourself, or use
    :class:`Group`, when they matter to the program.

    With an eager task factory the coroutine starts (and may even finish) before ``go``
    returns.

    Raises:
        TypeError: ``coro`` is not a coroutine object (e.g. a coroutine function that was
            not called).
        RuntimeError: there is no running event loop (``coro`` is closed first).
    """
    obj: object = coro  # typed callers cannot get this wrong; untyped ones can
    if not asyncio.iscoroutine(obj):
        hint = " (did you forget to call it?)" if callable(obj) else ""
        raise TypeError(f"go() expects a coroutine object, got {obj!r}{hint}")
    try:
        loop = asyncio.get_running_loop()
        task = loop.create_task(coro, name=name)
    except BaseException:
        coro.close()  # it will never run; avoid the "was never awaited" warning
        raise
    _running.add(task)
    task.add_done_callback(_on_done)
    return task


def _on_done(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if task.cancelled():
        return
    # Completion callbacks of whoever awaits the task were scheduled alongside this one;
    # check only after they have run, so an awaited exception is not reported.
    task.get_loop().call_soon(_report_if_unobserved, task)


def _report_if_unobserved(task: asyncio.Task[Any]) -> None:
    # ``_log_traceback`` is asyncio's own "exception set but never retrieved" flag (both the
    # C and the Python Future have it); it is what asyncio checks when the task is
    # collected. Calling exception() clears it, so asyncio will not report it a second time.
    unobserved = getattr(task, "_log_traceback", True)
    if not unobserved:
        return
    exc = task.exception()
    if exc is not None:
        logger.error(
            "unobserved exception in task %r started by go()",
            task.get_name(),
            exc_info=(type(exc), exc, exc.__traceback__),
        )
