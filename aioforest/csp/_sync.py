"""Go's ``sync`` package and ``errgroup`` for asyncio: WaitGroup, Group, Once, Mutex."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections import deque
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Final, NoReturn, TypeVar, final

from ._go import go, logger
from ._loop import LoopBound

__all__ = ["Group", "Mutex", "Once", "WaitGroup"]

T = TypeVar("T")


def _check_count(n: object, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{what} must be an int, got {type(n).__name__} {n!r}")
    return n


def _wake_all(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        fut = waiters.popleft()
        if not fut.done():
            fut.set_result(None)


def _discard(waiters: deque[asyncio.Future[None]], fut: asyncio.Future[None]) -> None:
    if fut in waiters:
        waiters.remove(fut)


# --------------------------------------------------------------------------- WaitGroup


@final
class WaitGroup(LoopBound):
    """Wait for a collection of tasks to finish (Go's ``sync.WaitGroup``).

    ``add(n)`` before starting work, ``done()`` when a piece of work ends, ``await wait()``
    to block until the counter is back to zero. ``go(coro)`` does all three for a coroutine.
    """

    __slots__ = ("_count", "_waiters")

    def __init__(self) -> None:
        super().__init__()
        self._count = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __repr__(self) -> str:
        return f"<WaitGroup count={self._count} waiters={len(self._waiters)}>"

    def add(self, n: int = 1) -> None:
        """Add ``n`` (which may be negative) to the counter; at zero, release every waiter.

        Raises:
            ValueError: the counter would become negative (it is left unchanged).
        """
        count = self._count + _check_count(n, "WaitGroup.add() delta")
        if count < 0:
            raise ValueError(
                f"negative WaitGroup counter: {self._count} + ({n}) = {count}"
                " (done() called more often than add())"
            )
        self._count = count
        if count == 0:
            _wake_all(self._waiters)

    def done(self) -> None:
        """Decrement the counter by one (``add(-1)``)."""
        self.add(-1)

    async def wait(self) -> None:
        """Wait until the counter is zero; returns at once if it already is.

        Cancellation: a cancelled ``wait`` has no effect on the group.
        """
        if self._count == 0:
            return
        fut: asyncio.Future[None] = self._get_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except BaseException:
            _discard(self._waiters, fut)
            raise

    def go(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """``add(1)``, run ``coro`` with :func:`go`, and ``done()`` when its task ends.

        ``done()`` is called however the task ends (result, exception or cancellation), so
        ``wait()`` cannot hang on a failed task; unlike Go, a failure does not crash the
        program: it is reported like any :func:`go` task (await the returned task, or use
        :class:`Group` to propagate errors).
        """
        self.add(1)
        try:
            task = go(coro)
        except BaseException:
            self.done()
            raise
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, _task: asyncio.Task[Any]) -> None:
        self.done()


# --------------------------------------------------------------------------- Group

_NEW: Final = 0
_OPEN: Final = 1  # the body of ``async with`` runs
_EXITING: Final = 2  # __aexit__ waits for the children
_CLOSED: Final = 3


@final
class Group:
    """Run tasks as a group; the first error cancels the rest (Go's ``errgroup``).

    Usage::

        async with Group(limit=4) as g:
            for item in items:
                g.go(work(item))
        # here every task has finished

    * Leaving the ``async with`` block waits for every task started in the group.
    * The first task to fail with an exception (other than ``CancelledError``) cancels all
      the other tasks and the body of the block, and that exception itself (not an
      ``ExceptionGroup``) is raised from the ``async with``. Later failures, usually caused
      by the cancellation, are logged at DEBUG level on ``aioforest.csp`` and dropped, as
      errgroup drops them.
    * If the body raises, the tasks are cancelled and awaited, then the body's exception
      propagates (unless a task had failed first: the first error wins).
    * If the task running the block is cancelled, the tasks are cancelled and awaited, and
      ``CancelledError`` propagates. A task error that happened first still takes priority,
      as in ``asyncio.TaskGroup``.
    * ``limit`` bounds how many tasks run at once. ``go()`` never blocks (it is a plain
      function): past the limit it queues the coroutine, which starts, in submission order
      and in the context ``go()`` was called in, when a running task ends. Queued
      coroutines that never start (because the group is aborting) are closed.
    """

    __slots__ = (
        "_aborting",
        "_active",
        "_error",
        "_idle",
        "_limit",
        "_loop",
        "_parent",
        "_parent_cancel_requested",
        "_queue",
        "_state",
        "_tasks",
    )

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None:
            _check_count(limit, "Group limit")
            if limit < 1:
                raise ValueError(f"Group limit must be >= 1 or None (no limit), got {limit}")
        self._limit = limit
        self._state = _NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._parent: asyncio.Task[Any] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._active = 0  # started tasks whose completion has not been processed yet
        self._queue: deque[tuple[Coroutine[Any, Any, Any], contextvars.Context]] = deque()
        self._error: BaseException | None = None
        self._aborting = False
        self._parent_cancel_requested = False
        self._idle: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        state = ("new", "open", "exiting", "closed")[self._state]
        return (
            f"<Group {state} limit={self._limit} running={self._active}"
            f" queued={len(self._queue)}{' aborting' if self._aborting else ''}>"
        )

    @property
    def limit(self) -> int | None:
        """The maximum number of tasks running at once (``None``: no limit)."""
        return self._limit

    async def __aenter__(self) -> Group:
        """Open the group in the current task (it never waits, so it is not a
        cancellation point).

        Raises:
            RuntimeError: the group was entered before, or there is no current task.
        """
        if self._state != _NEW:
            raise RuntimeError("a Group can be entered only once")
        parent = asyncio.current_task()
        if parent is None:
            raise RuntimeError("Group must be used inside a task")
        self._loop = asyncio.get_running_loop()
        self._parent = parent
        self._state = _OPEN
        return self

    def go(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Start ``coro`` as a task of the group, or queue it if ``limit`` tasks are running.

        Never blocks. The task's result is discarded; its exception, if first, aborts the
        group.

        Raises:
            RuntimeError: the group is not open (not entered yet, finished, or aborting
                after an error); ``coro`` is closed.
        """
        self._check_open(coro)
        if self._limit is None or self._active < self._limit:
            self._start(coro, None)
        else:
            self._queue.append((coro, contextvars.copy_context()))

    def try_go(self, coro: Coroutine[Any, Any, Any]) -> bool:
        """Start ``coro`` now if fewer than ``limit`` tasks run; else close it and return False.

        Raises:
            RuntimeError: as for :meth:`go`.
        """
        self._check_open(coro)
        if self._limit is not None and self._active >= self._limit:
            coro.close()  # it will never run; avoid the "was never awaited" warning
            return False
        self._start(coro, None)
        return True

    def _check_open(self, coro: Coroutine[Any, Any, Any]) -> None:
        obj: object = coro  # typed callers cannot get this wrong; untyped ones can
        if not asyncio.iscoroutine(obj):
            raise TypeError(f"Group.go() expects a coroutine object, got {obj!r}")
        if self._state in (_OPEN, _EXITING) and not self._aborting:
            return
        coro.close()
        if self._state == _NEW:
            raise RuntimeError("Group.go() called before entering the group (use async with)")
        raise RuntimeError(f"Group.go() called on a group that is {self._why_closed()}")

    def _why_closed(self) -> str:
        if self._state == _CLOSED:
            return "finished"
        return "aborting after an error or cancellation"

    def _start(self, coro: Coroutine[Any, Any, Any], context: contextvars.Context | None) -> None:
        assert self._loop is not None
        # Count before create_task: an eager task may call go() before it returns.
        self._active += 1
        try:
            task = self._loop.create_task(coro, context=context)
        except BaseException:
            self._active -= 1
            coro.close()
            raise
        self._tasks.add(task)
        task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._active -= 1
        if not task.cancelled():
            exc = task.exception()  # also marks it retrieved
            if exc is not None:
                self._on_error(exc)
        queue = self._queue
        limit = self._limit
        while queue and not self._aborting and (limit is None or self._active < limit):
            coro, context = queue.popleft()
            self._start(coro, context)
        if self._active == 0 and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def _on_error(self, exc: BaseException) -> None:
        if self._error is not None:
            logger.debug("Group: dropping an error that came after the first one", exc_info=exc)
            return
        self._error = exc
        self._abort()
        parent = self._parent
        if self._state == _OPEN and parent is not None and not parent.done():
            # Interrupt the body of the block too; __aexit__ withdraws this request.
            self._parent_cancel_requested = True
            parent.cancel()

    def _abort(self) -> None:
        self._aborting = True
        for task in self._tasks:
            if not task.done():
                task.cancel()
        queue = self._queue
        while queue:
            coro, _ = queue.popleft()
            coro.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Wait for every task; raise the first error, or let the body's exception through.

        Cancellation: if the task is cancelled while waiting here, the group's tasks are
        cancelled and awaited, then ``CancelledError`` propagates.
        """
        assert self._loop is not None and self._parent is not None
        self._state = _EXITING
        cancel_exc = exc if isinstance(exc, asyncio.CancelledError) else None
        if exc is not None:
            if cancel_exc is None and self._error is None:
                self._error = exc  # the body failed first: it is the error to report
            if not self._aborting:
                self._abort()
        while self._active:
            idle: asyncio.Future[None] = self._loop.create_future()
            self._idle = idle
            try:
                await idle
            except asyncio.CancelledError as e:
                cancel_exc = e
                if not self._aborting:
                    self._abort()
            finally:
                self._idle = None
        if self._parent_cancel_requested:
            if cancel_exc is None:
                # The body swallowed our cancellation request (or it is still pending):
                # take delivery here so that withdrawing it cannot leave a stray
                # cancellation behind (on Python < 3.13 uncancel() does not clear it).
                try:
                    await asyncio.sleep(0)
                except asyncio.CancelledError as e:
                    cancel_exc = e
            self._parent_cancel_requested = False
            if self._parent.uncancel() == 0:
                cancel_exc = None  # only our own request was pending: absorb it
        self._state = _CLOSED
        error = self._error
        if error is not None:
            if error is exc:
                return False  # the body's own exception, raised unchanged
            _raise_keeping_chain(error)
        if cancel_exc is not None and cancel_exc is not exc:
            raise cancel_exc
        return False


def _raise_keeping_chain(error: BaseException) -> NoReturn:
    """Raise ``error`` from ``__aexit__`` without rewriting its exception chain.

    Raising while the body's exception (typically the ``CancelledError`` the group caused)
    is being handled would make that the error's ``__context__``, replacing the context the
    error had in its own task. Restore the chain as the exception leaves.
    """
    cause, context, suppress = error.__cause__, error.__context__, error.__suppress_context__
    try:
        raise error
    finally:
        error.__cause__ = cause
        error.__context__ = context
        error.__suppress_context__ = suppress


# --------------------------------------------------------------------------- Once


@final
class Once(LoopBound):
    """Run an initialisation exactly once (Go's ``sync.Once``).

    ``await once.do(fn)`` calls ``fn`` (a plain function or a coroutine function; an
    awaitable result is awaited) if no call has completed yet. Concurrent callers wait
    until that call finishes, then return. As in Go, if ``fn`` raises, the Once still
    counts as done: the exception goes to the caller that ran ``fn`` and every other
    caller returns normally. The return value of ``fn`` is discarded.

    Cancellation is not a failure of ``fn``: if the caller running ``fn`` is cancelled, the
    Once is not done and the next caller (one that was waiting, or a later one) runs ``fn``
    again. A waiting caller that is cancelled has no effect on the Once.
    """

    __slots__ = ("_done", "_runner", "_waiters")

    def __init__(self) -> None:
        super().__init__()
        self._done = False
        self._runner: asyncio.Task[Any] | None = None
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __repr__(self) -> str:
        state = "done" if self._done else ("running" if self._runner is not None else "new")
        return f"<Once {state}>"

    async def do(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` unless it has already run; wait if another task is running it.

        Raises:
            Exception: whatever ``fn`` raised, to the caller that ran it.
            RuntimeError: ``fn`` itself called ``do`` on this Once (it would deadlock).

        Cancellation: see the class docstring; a cancelled waiter changes nothing, a
        cancelled runner leaves the Once not done.
        """
        while not self._done:
            runner = self._runner
            if runner is None:
                await self._run(fn)
                return
            if runner is asyncio.current_task():
                raise RuntimeError("Once.do() called from within its own function (deadlock)")
            fut: asyncio.Future[None] = self._get_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except BaseException:
                _discard(self._waiters, fut)
                raise

    async def _run(self, fn: Callable[[], object]) -> None:
        self._runner = asyncio.current_task()
        try:
            result = fn()
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            self._runner = None  # not done: the next caller runs fn
            _wake_all(self._waiters)
            raise
        except BaseException:
            self._finish()
            raise
        self._finish()

    def _finish(self) -> None:
        self._done = True
        self._runner = None
        _wake_all(self._waiters)


# --------------------------------------------------------------------------- Mutex


@final
class Mutex(LoopBound):
    """A mutual-exclusion lock for tasks (Go's ``sync.Mutex``).

    ``async with mu:`` or ``await mu.lock()`` / ``mu.unlock()``; ``try_lock()`` never waits.
    Like Go's (and unlike ``trio.Lock``), the lock is not owned by a task: any task may
    unlock it. Unlocking hands the lock directly to the longest-waiting task (FIFO), so a
    task that unlocks and immediately locks again queues behind the waiters.
    """

    __slots__ = ("_locked", "_waiters")

    def __init__(self) -> None:
        super().__init__()
        self._locked = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __repr__(self) -> str:
        state = "locked" if self._locked else "unlocked"
        return f"<Mutex {state} waiters={len(self._waiters)}>"

    def locked(self) -> bool:
        """Whether the mutex is held."""
        return self._locked

    def try_lock(self) -> bool:
        """Take the mutex if it is free and return True; return False otherwise."""
        if self._locked:
            return False
        self._locked = True
        return True

    async def lock(self) -> None:
        """Take the mutex, waiting in FIFO order while it is held.

        Cancellation: a cancelled ``lock`` does not hold the mutex; if the mutex had just
        been handed to it, it is passed on to the next waiter (or released).
        """
        if not self._locked:
            self._locked = True
            return
        fut: asyncio.Future[None] = self._get_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.unlock()  # the lock was handed to us: pass it on
            else:
                fut.cancel()
                _discard(self._waiters, fut)
            raise

    def unlock(self) -> None:
        """Release the mutex, handing it to the first waiting task if any.

        Raises:
            RuntimeError: the mutex is not locked.
        """
        if not self._locked:
            raise RuntimeError("unlock of unlocked Mutex")
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # ownership passes; the mutex stays locked
                return
        self._locked = False

    async def __aenter__(self) -> None:
        """Lock (see :meth:`lock`, including its cancellation behaviour)."""
        await self.lock()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Unlock (never waits)."""
        self.unlock()
