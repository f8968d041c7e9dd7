"""Go-style channels: ``Chan`` and the parked-waiter machinery shared with ``select``.

Design
------
* Every operation has a synchronous core (``_try_send`` / ``_try_recv``) that completes it
  if it can without waiting. The public ``*_nowait`` methods and the fast path of the
  ``async`` methods are that core; no future is created unless the task has to park.
* A parked operation is a ``Waiter`` in ``_sendq`` / ``_recvq`` (``collections.deque``).
  Its future is the *commit token*: whoever completes the operation pops the waiter, stores
  the outcome on it and resolves the future, all in one synchronous step. A ``select`` parks
  one waiter per case and all of them share one future, so the first channel that resolves
  it commits that case; the committer unlinks the sibling waiters from their channels at
  once, so no losing case ever stays queued.
* Matching only happens when an *active* operation arrives; two parked waiters are never
  matched with each other, which is why a select holding both ``send(c, v)`` and
  ``recv(c)`` cannot rendezvous with itself.
* A waiter whose future is already done (its task was cancelled and has not run yet) is
  skipped and dropped by whoever meets it first; the owner's cleanup tolerates that.

Cancellation
------------
A cancelled operation leaves the channel as if it had never been called. The race where
the operation was committed by another task but its own task is cancelled before it
resumes is resolved as follows:

* a receive that was handed a value puts the value back at the head of the channel (to the
  next parked receiver if there is one, otherwise at the front of the buffer, which may
  briefly hold more than ``cap`` items) and raises ``CancelledError``;
* a send whose value was taken *was delivered*: it returns normally and the cancellation
  is requested again, to be raised where the task next suspends
  (see ``_loop.rearm_cancellation`` for the details per Python version).

So "the send returned" always means "the value is in the channel or with a receiver", and
"the send raised" always means "the value was not delivered".
"""

from __future__ import annotations

import asyncio
import math
from asyncio import get_running_loop
from collections import deque
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar, final

from ._errors import ChannelClosed, WouldBlock
from ._loop import LoopBound, rearm_cancellation

__all__ = ["Chan", "ChannelStatistics"]

T = TypeVar("T")


@final
class _Marker:
    """A private sentinel that can never be confused with a user value."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"<{self._name}>"


# Outcomes of the synchronous receive core besides a value.
EMPTY: Final = _Marker("EMPTY")  # nothing to receive now, the caller would block
CLOSED: Final = _Marker("CLOSED")  # closed and drained: the receive yields (zero, False)


class Waiter:
    """One parked plain send or receive (see :class:`CaseWaiter` for ``select``).

    ``fut`` is the commit token. The committer pops the waiter, sets ``value`` (the value
    received; a sender's value stays as it was) and ``ok`` (False when the channel was
    closed instead), then resolves ``fut`` with the waiter itself.
    """

    __slots__ = ("fut", "group", "ok", "value")

    def __init__(self, fut: asyncio.Future[Any], value: Any) -> None:
        self.fut = fut
        self.value = value
        self.ok = False
        self.group: list[CaseWaiter] | None = None


@final
class CaseWaiter(Waiter):
    """One case of a parked ``select``: all cases share ``fut`` and list each other in
    ``group`` so that the committer can withdraw the losing cases from their channels."""

    __slots__ = ("chan", "index", "is_send")

    def __init__(
        self,
        fut: asyncio.Future[Any],
        value: Any,
        chan: Chan[Any],
        index: int,
        is_send: bool,
        group: list[CaseWaiter],
    ) -> None:
        self.fut = fut
        self.value = value
        self.ok = False
        self.group = group
        self.chan = chan
        self.index = index
        self.is_send = is_send


def commit(w: Waiter, value: Any, ok: bool) -> None:
    """Complete the parked operation ``w`` (already popped from its queue)."""
    w.value = value
    w.ok = ok
    group = w.group
    if group is not None:
        # Exactly one case of a select commits; withdraw the others right away.
        for other in group:
            if other is not w:
                other.chan._unlink(other, other.is_send)
    w.fut.set_result(w)


def _has_live(queue: deque[Waiter]) -> bool:
    """Whether ``queue`` holds a waiter that can still be committed (drops dead heads)."""
    while queue:
        if not queue[0].fut.done():
            return True
        queue.popleft()
    return False


def _count_live(queue: deque[Waiter]) -> int:
    return sum(1 for w in queue if not w.fut.done())


@final
@dataclass(frozen=True, slots=True)
class ChannelStatistics:
    """A snapshot of a channel, returned by :meth:`Chan.statistics`.

    ``waiting_senders`` / ``waiting_receivers`` count parked operations that can still
    complete (a ``select`` counts once per case on this channel).
    """

    buffered: int
    capacity: int | float
    closed: bool
    waiting_senders: int
    waiting_receivers: int


@final
class Chan(LoopBound, Generic[T]):
    """A Go channel for asyncio tasks.

    ``Chan(0)`` (the default) is unbuffered: a send completes only when a receiver takes
    the value (a rendezvous). ``Chan(n)`` buffers up to ``n`` values in FIFO order; a send
    blocks only when the buffer is full, a receive only when it is empty. ``Chan(math.inf)``
never blocks a sender (as trio's ``open_memory_channel(math.inf)``): for an outbox filled
from synchronous code, whose size something else bounds.

    ``zero`` is what a receive returns once the channel is closed and drained (Go's zero
    value). It is typed as ``T``: parametrize the channel as ``Chan[X | None]`` when you keep
    the default ``None`` and use :meth:`recv`; :meth:`recv_ok` and ``async for`` tell the
    closed case apart without relying on it.

    ``len(ch)`` is the number of buffered values, ``ch.cap`` the capacity and ``ch.closed``
    whether :meth:`close` was called. A channel is always truthy (it has a ``len``).

    Use from one event loop (the first one that waits on it); it is not thread-safe.
    The ``None`` channel of ``select`` plays Go's nil channel.
    """

    __slots__ = ("__weakref__", "_buf", "_cap", "_closed", "_recvq", "_sendq", "_zero")

    def __init__(self, capacity: int | float = 0, *, zero: Any = None) -> None:
        if isinstance(capacity, bool) or not (
            isinstance(capacity, int) or capacity == math.inf
        ):
            raise TypeError(
                "Chan capacity must be an int >= 0 or math.inf, got "
                f"{type(capacity).__name__} {capacity!r}"
            )
        if capacity < 0:
            raise ValueError(f"Chan capacity must be >= 0, got {capacity}")
        super().__init__()
        self._cap = capacity
        self._zero: T = zero
        self._closed = False
        self._buf: deque[T] = deque()
        self._recvq: deque[Waiter] = deque()
        self._sendq: deque[Waiter] = deque()

    # ------------------------------------------------------------------ inspection

    @property
    def cap(self) -> int | float:
        """The buffer capacity (0 for an unbuffered channel, ``math.inf`` for unbounded)."""
        return self._cap

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called (values may still be buffered)."""
        return self._closed

    @property
    def zero(self) -> T:
        """The value a receive returns once the channel is closed and drained."""
        return self._zero

    def __len__(self) -> int:
        return len(self._buf)

    def __bool__(self) -> bool:
        # Without this an empty channel would be falsy through __len__.
        return True

    def statistics(self) -> ChannelStatistics:
        """Return a :class:`ChannelStatistics` snapshot (buffer and parked operations)."""
        return ChannelStatistics(
            buffered=len(self._buf),
            capacity=self._cap,
            closed=self._closed,
            waiting_senders=_count_live(self._sendq),
            waiting_receivers=_count_live(self._recvq),
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Chan cap={self._cap} len={len(self._buf)} {state} at {id(self):#x}>"

    # ------------------------------------------------------------------ synchronous core

    def _try_send(self, value: T) -> bool:
        """Send without waiting: True if done, False if the sender would block."""
        if self._closed:
            raise ChannelClosed("send on closed channel")
        recvq = self._recvq
        while recvq:
            w = recvq.popleft()
            if not w.fut.done():
                # A parked receiver takes the value directly (it is empty-handed, so the
                # buffer is empty too and FIFO order is kept).
                if w.group is None:  # inlined commit() for the common plain receive
                    w.value = value
                    w.ok = True
                    w.fut.set_result(w)
                else:
                    commit(w, value, True)
                return True
        buf = self._buf
        if len(buf) < self._cap:
            buf.append(value)
            return True
        return False

    def _try_recv(self) -> Any:
        """Receive without waiting: a value, ``CLOSED`` or ``EMPTY``."""
        buf = self._buf
        if buf:
            value = buf.popleft()
            if self._sendq:
                self._refill()
            return value
        sendq = self._sendq
        while sendq:
            w = sendq.popleft()
            if not w.fut.done():
                if w.group is None:  # inlined commit() for the common plain send
                    w.ok = True
                    w.fut.set_result(w)
                else:
                    commit(w, w.value, True)
                return w.value
        if self._closed:
            return CLOSED
        return EMPTY

    def _refill(self) -> None:
        """Move parked senders' values into freed buffer slots, completing their sends."""
        buf = self._buf
        sendq = self._sendq
        cap = self._cap
        while sendq and len(buf) < cap:
            w = sendq.popleft()
            if not w.fut.done():
                buf.append(w.value)
                commit(w, w.value, True)

    def _push_back(self, value: T) -> None:
        """Return a value taken by a receiver that was cancelled before it could resume."""
        recvq = self._recvq
        while recvq:
            w = recvq.popleft()
            if not w.fut.done():
                commit(w, value, True)
                return
        # May exceed the capacity by one: the value was already accepted by the channel.
        self._buf.appendleft(value)

    def _unlink(self, w: Waiter, is_send: bool) -> None:
        """Remove a parked waiter if it is still queued (someone may have dropped it)."""
        queue = self._sendq if is_send else self._recvq
        if w in queue:
            queue.remove(w)

    def _send_ready(self) -> bool:
        """Whether a send would complete now (or raise because the channel is closed)."""
        return self._closed or _has_live(self._recvq) or len(self._buf) < self._cap

    def _recv_ready(self) -> bool:
        """Whether a receive would complete now (a value, or closed-and-drained)."""
        return bool(self._buf) or self._closed or _has_live(self._sendq)

    def _withdraw_send(self, w: Waiter, exc: BaseException) -> bool:
        """Clean up after a parked send was interrupted by ``exc``.

        Returns True if the value had already been delivered and ``exc`` is a
        cancellation: the send then counts as done and the cancellation is re-armed.
        """
        fut = w.fut
        if fut.done() and not fut.cancelled():
            if w.ok and isinstance(exc, asyncio.CancelledError):
                rearm_cancellation(exc)
                return True
            return False  # closed meanwhile: the send had no effect
        fut.cancel()
        self._unlink(w, True)
        return False

    def _withdraw_recv(self, w: Waiter) -> None:
        """Clean up after a parked receive was interrupted: it must not keep a value."""
        fut = w.fut
        if fut.done() and not fut.cancelled():
            if w.ok:
                self._push_back(w.value)
        else:
            fut.cancel()
            self._unlink(w, False)

    # ------------------------------------------------------------------ sending

    def send_nowait(self, value: T) -> None:
        """Send ``value`` if that needs no waiting.

        Succeeds when a receiver is parked (it takes the value) or the buffer has room.

        Raises:
            WouldBlock: the send would have to wait (always, on an unbuffered channel
                without a parked receiver).
            ChannelClosed: the channel is closed.
        """
        if not self._try_send(value):
            raise WouldBlock("send would block: no parked receiver and no free buffer slot")

    async def send(self, value: T) -> None:
        """Send ``value``, waiting until a receiver takes it or buffer space frees up.

        Raises:
            ChannelClosed: the channel is closed, or gets closed while this send waits
                (the value is then discarded, as in Go).

        Cancellation: if cancelled while waiting, the value was not sent and the channel is
        unchanged. If the value had already been taken when the cancellation arrived, the
        send *was* delivered: it returns normally and the cancellation is requested again,
        to be raised where the task next suspends (if a canceller such as
        ``asyncio.timeout`` withdraws it first, it is dropped). Completing without waiting
        is not a cancellation point.
        """
        if self._try_send(value):
            return
        loop = get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        w = Waiter(loop.create_future(), value)
        self._sendq.append(w)
        try:
            await w.fut
        except BaseException as exc:
            if self._withdraw_send(w, exc):
                return
            raise
        if not w.ok:
            raise ChannelClosed("channel closed while a send was waiting")

    # ------------------------------------------------------------------ receiving

    def recv_nowait(self) -> tuple[T, bool]:
        """Receive without waiting.

        Returns ``(value, True)`` for a value, or ``(zero, False)`` once the channel is
        closed and drained (a closed channel never blocks).

        Raises:
            WouldBlock: nothing to receive and the channel is open.
        """
        value = self._try_recv()
        if value is EMPTY:
            raise WouldBlock("receive would block: channel is empty and open")
        if value is CLOSED:
            return self._zero, False
        return value, True

    async def recv(self) -> T:
        """Receive a value, waiting for one; returns ``zero`` once closed and drained.

        Cancellation: if cancelled while waiting, nothing was received and the channel is
        unchanged; a value handed to this receive just before the cancellation landed is
        put back at the head of the channel. Completing without waiting is not a
        cancellation point.
        """
        value = self._try_recv()
        if value is EMPTY:
            loop = get_running_loop()
            if loop is not self._loop:
                self._bind(loop)
            w = Waiter(loop.create_future(), None)
            self._recvq.append(w)
            try:
                await w.fut
            except BaseException:
                self._withdraw_recv(w)
                raise
            return w.value if w.ok else self._zero
        if value is CLOSED:
            return self._zero
        return value  # type: ignore[no-any-return]

    async def recv_ok(self) -> tuple[T, bool]:
        """Receive ``(value, True)``, or ``(zero, False)`` once closed and drained.

        Cancellation: as for :meth:`recv`; a cancelled call received nothing.
        """
        value = self._try_recv()
        if value is EMPTY:
            loop = get_running_loop()
            if loop is not self._loop:
                self._bind(loop)
            w = Waiter(loop.create_future(), None)
            self._recvq.append(w)
            try:
                await w.fut
            except BaseException:
                self._withdraw_recv(w)
                raise
            return (w.value, True) if w.ok else (self._zero, False)
        if value is CLOSED:
            return self._zero, False
        return value, True

    def __aiter__(self) -> Chan[T]:
        return self

    async def __anext__(self) -> T:
        """Receive the next value; stops once the channel is closed and drained.

        Cancellation: as for :meth:`recv`.
        """
        value = self._try_recv()
        if value is EMPTY:
            loop = get_running_loop()
            if loop is not self._loop:
                self._bind(loop)
            w = Waiter(loop.create_future(), None)
            self._recvq.append(w)
            try:
                await w.fut
            except BaseException:
                self._withdraw_recv(w)
                raise
            if w.ok:
                return w.value  # type: ignore[no-any-return]
            raise StopAsyncIteration
        if value is CLOSED:
            raise StopAsyncIteration
        return value  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Close the channel.

        Buffered values can still be received; after that every receive returns at once
        with ``ok=False``. Parked receivers wake with ``(zero, False)``; parked senders and
        every later send raise :class:`ChannelClosed`.

        Raises:
            ChannelClosed: the channel was already closed.
        """
        if self._closed:
            raise ChannelClosed("close of closed channel")
        self._closed = True
        zero = self._zero
        recvq = self._recvq
        while recvq:
            w = recvq.popleft()
            if not w.fut.done():
                commit(w, zero, False)
        sendq = self._sendq
        while sendq:
            w = sendq.popleft()
            if not w.fut.done():
                commit(w, w.value, False)
