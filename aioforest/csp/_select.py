"""Go's ``select`` statement over :class:`Chan` send and receive cases."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any, Final, NamedTuple, TypeVar, final

from ._chan import CLOSED, CaseWaiter, Chan
from ._errors import ChannelClosed
from ._loop import rearm_cancellation

__all__ = ["RecvCase", "Selected", "SendCase", "recv", "select", "send"]

T = TypeVar("T")


class Selected(NamedTuple):
    """The case a :func:`select` committed.

    ``index`` is the position of the case in the call (``-1`` for ``default``). For a
    receive case ``value``/``ok`` are what :meth:`Chan.recv_ok` would return; for a send case
    they are ``None``/``True``; for ``default`` they are ``None``/``False``.
    """

    index: int  # type: ignore[assignment]  # shadows tuple.index, as the spec names it
    value: Any
    ok: bool


@final
class RecvCase:
    """A receive case of :func:`select`; build it with :func:`recv`."""

    __slots__ = ("chan",)

    def __init__(self, chan: Chan[Any] | None) -> None:
        if chan is not None and not isinstance(chan, Chan):
            raise TypeError(f"recv() expects a Chan or None, got {type(chan).__name__}")
        self.chan = chan

    def __repr__(self) -> str:
        return f"recv({self.chan!r})"


@final
class SendCase:
    """A send case of :func:`select`; build it with :func:`send`."""

    __slots__ = ("chan", "value")

    def __init__(self, chan: Chan[Any] | None, value: Any) -> None:
        if chan is not None and not isinstance(chan, Chan):
            raise TypeError(f"send() expects a Chan or None, got {type(chan).__name__}")
        self.chan = chan
        self.value = value

    def __repr__(self) -> str:
        return f"send({self.chan!r}, {self.value!r})"


def recv(chan: Chan[Any] | None) -> RecvCase:
    """A :func:`select` case receiving from ``chan`` (``None`` is never ready)."""
    return RecvCase(chan)


def send(chan: Chan[T] | None, value: T) -> SendCase:
    """A :func:`select` case sending ``value`` on ``chan`` (``None`` is never ready)."""
    return SendCase(chan, value)


_DEFAULT: Final = Selected(-1, None, False)
# Builds a Selected without the Python-level NamedTuple.__new__ (select is a hot path).
_selected: Final = tuple.__new__
# Private so that seeding the global ``random`` module does not make selects predictable
# (and selects do not disturb a seeded global stream).
_rng: Final = random.Random()


async def select(
    *cases: RecvCase | SendCase,
    default: bool = False,
    rng: random.Random | None = None,
) -> Selected:
    """Wait until one of ``cases`` can proceed, then perform exactly that one.

    Cases are :func:`recv` and :func:`send`. All cases are inspected at one instant; if
    several are ready one is chosen uniformly at random (pass ``rng`` to make the choice
    repeatable). A case on a ``None`` channel is never ready. With ``default=True`` and
    nothing ready, returns ``Selected(-1, None, False)`` at once; without it, the call
    parks on every case and the first channel to act on it commits that case (the other
    cases are withdrawn from their channels at that moment). ``select()`` with no case,
    or with only ``None`` channels and no default, waits forever (until cancelled).

    A receive case on a closed, drained channel is ready and yields ``(zero, ok=False)``.
    The same channel may appear in several cases; a select holding both a send and a
    receive on one unbuffered channel never rendezvouses with itself.

    Raises:
        ChannelClosed: the committed case is a send on a closed channel (also when the
            channel is closed while the select waits with that case).
        TypeError: a case is not a ``recv(...)``/``send(...)`` case.

    Cancellation: if cancelled while waiting, no case happened and every channel is left
    as it was. If a receive case had already been handed a value, the value goes back to
    the head of its channel and ``CancelledError`` is raised; if a send case had already
    been delivered, the select returns that case and the cancellation is requested again,
    to be raised where the task next suspends (as for :meth:`Chan.send`). Completing
    without waiting is not a cancellation point.
    """
    chosen = -1
    nready = 0
    for i, case in enumerate(cases):
        kind = type(case)
        if kind is RecvCase:
            chan = case.chan
            if chan is not None and chan._recv_ready():
                nready += 1
                # Reservoir sampling: each ready case is kept with probability 1/nready.
                if nready == 1 or (rng or _rng).random() * nready < 1.0:
                    chosen = i
        elif kind is SendCase:
            chan = case.chan
            if chan is not None and chan._send_ready():
                nready += 1
                if nready == 1 or (rng or _rng).random() * nready < 1.0:
                    chosen = i
        else:
            raise TypeError(
                f"select() case {i} must be recv(chan) or send(chan, value), got {case!r}"
            )
    if chosen < 0:
        if default:
            return _DEFAULT
        return await _park(cases, rng or _rng)
    # Perform the chosen case: nothing can have changed since it was found ready.
    case = cases[chosen]
    chan = case.chan
    assert chan is not None
    if type(case) is SendCase:
        if not chan._try_send(case.value):  # raises ChannelClosed on a closed channel
            raise AssertionError("select: a ready send case could not complete")
        return _selected(Selected, (chosen, None, True))
    value = chan._try_recv()
    if value is CLOSED:
        return _selected(Selected, (chosen, chan.zero, False))
    return _selected(Selected, (chosen, value, True))


async def _park(cases: Sequence[RecvCase | SendCase], rng: random.Random) -> Selected:
    loop = asyncio.get_running_loop()
    chans = [case.chan for case in cases if case.chan is not None]
    for bound in chans:
        bound._bind(loop)  # bind or reject before anything is enqueued
    order: Sequence[int] = range(len(cases))
    if len({id(c) for c in chans}) < len(chans):
        # Cases sharing a channel queue up on it in random order (as Go's lock order
        # does), so the first operation on that channel picks one of them uniformly.
        order = list(order)
        rng.shuffle(order)
    fut: asyncio.Future[CaseWaiter] = loop.create_future()
    group: list[CaseWaiter] = []
    try:
        for i in order:
            case = cases[i]
            chan = case.chan
            if chan is None:
                continue
            if type(case) is SendCase:
                w = CaseWaiter(fut, case.value, chan, i, True, group)
                chan._sendq.append(w)
            else:
                w = CaseWaiter(fut, None, chan, i, False, group)
                chan._recvq.append(w)
            group.append(w)
        try:
            won = await fut
        except BaseException as exc:
            if fut.done() and not fut.cancelled():
                won = fut.result()
                if won.is_send:
                    if won.ok and isinstance(exc, asyncio.CancelledError):
                        rearm_cancellation(exc)  # delivered: the select did happen
                        return Selected(won.index, None, True)
                elif won.ok:
                    won.chan._push_back(won.value)
                raise
            fut.cancel()
            for w in group:
                w.chan._unlink(w, w.is_send)
            raise
    finally:
        group.clear()  # breaks the waiter <-> group reference cycle
    if won.is_send:
        if not won.ok:
            raise ChannelClosed("channel closed while a select was waiting to send on it")
        return _selected(Selected, (won.index, None, True))
    if won.ok:
        return _selected(Selected, (won.index, won.value, True))
    return _selected(Selected, (won.index, won.chan.zero, False))
